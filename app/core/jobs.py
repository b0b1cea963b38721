"""The job queue every domain declares its background and periodic tasks on (huey).

Embedded default: an SQLite file beside the database, so the demo needs no broker.
Production: Redis (TSUNAGU_REDIS_URL), shared by every worker process. Tasks that touch many
rows still claim them in the database (FOR UPDATE SKIP LOCKED), so running several workers is
safe whatever the queue.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from app.core.config import Settings, get_settings


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("tsunagu", url=settings.redis_url, utc=True)
    settings.jobs_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("tsunagu", filename=str(settings.jobs_path), utc=True)


# Module-level, as huey expects: tasks are declared with `@huey.task()` / `@huey.periodic_task()`
# when their module is imported.
huey = make_huey(get_settings())
