"""The one settings object: every knob of tsunagu, read from TSUNAGU_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Known-public defaults: fine for a demo on a laptop, refused in production.
DEFAULT_SECRET = "change-me-demo-only"  # noqa: S105


class Mode(StrEnum):
    demo = "demo"
    dev = "dev"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TSUNAGU_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    mode: Mode = Mode.demo
    database_url: str = Field(
        default="sqlite:///var/tsunagu.db",
        description="Any SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        description="SQLite only: how long a writer waits for the write lock before the request "
        "is answered 503 with Retry-After",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections each process keeps open between requests; under a burst "
        "it opens up to twice as many more, closed again when returned",
    )
    timezone: str = "Asia/Tokyo"
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    redis_url: str | None = Field(
        default=None, description="Redis for the job queue in production; unset: an SQLite file"
    )
    jobs_path: Path = Path("var/jobs.db")

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    """Signs session cookies and CSRF tokens."""

    rate_limit_storage_url: str = Field(
        default="memory://",
        description="Where sign-in failures are counted (limits storage URI): memory:// for one "
        "process, redis://host:6379 when several app processes share the counts",
    )

    # Upstream systems outside the municipality (stand-ins in demo mode).
    myna_portal_url: str = "http://127.0.0.1:8101"
    national_id_url: str = "http://127.0.0.1:8102"
    national_id_client_id: str = "tsunagu"
    national_id_client_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    school_platform_url: str = "http://127.0.0.1:8103"
    school_affairs_url: str = "http://127.0.0.1:8104"
    school_affairs_client_id: str = "tsunagu"
    school_affairs_client_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    school_platform_client_id: str = "tsunagu"
    school_platform_client_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    myna_client_id: str = Field(default="SP12345678_AB1234", description="tsunagu's id at Myna Portal")
    upstream_timeout_seconds: float = Field(
        default=10.0, gt=0, description="how long an upstream may take to answer"
    )
    upstream_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="how long to wait for a connection to an upstream"
    )
    sync_overlap_minutes: int = Field(
        default=60, ge=0, description="each incremental sync re-reads this much before its cursor"
    )
    sync_workers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="syncs run side by side (PostgreSQL; SQLite has one writer and runs one): "
        "with two, one fetches while the other's batch is written (bench/ingest.py)",
    )

    # LINE Messaging API: the stand-in in demo mode, the real platform in production.
    line_api_url: str = "http://127.0.0.1:8105"
    line_channel_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    line_channel_access_token: SecretStr = SecretStr(DEFAULT_SECRET)
    line_access_url: str = Field(
        default="http://127.0.0.1:8105",
        description="Where the account-link dialog lives: https://access.line.me in production",
    )
    line_multicast_per_second: float = Field(default=200.0, gt=0, description="the channel's multicast limit")
    line_push_per_second: float = Field(default=2000.0, gt=0)
    notify_quiet_start_hour: int = Field(default=21, ge=0, le=23, description="no sends from (JST)")
    notify_quiet_end_hour: int = Field(default=7, ge=0, le=23, description="… until (JST)")
    notify_max_per_week: int = Field(default=3, ge=1, description="notices per recipient per 7 days")
    notify_test_recipient: str | None = Field(
        default=None,
        pattern=r"^U[0-9a-f]{32}$",
        description="LINE user id of the municipality's own test phone: staff send a notice there to "
        "see it as a family will, before scheduling it (the phone simulator's test device in the demo)",
    )
    notify_contact_ja: str = "つなぐ市 こども家庭センター（電話 0000-00-0000／平日 8:30〜17:15）"
    notify_contact_en: str = (
        "Tsunagu City Children and Families Center (tel. 0000-00-0000, weekdays 8:30-17:15)"
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Self:
        if self.mode is not Mode.production:
            return self
        defaulted = [
            name
            for name in (
                "secret_key",
                "school_affairs_client_secret",
                "national_id_client_secret",
                "school_platform_client_secret",
                "line_channel_secret",
                "line_channel_access_token",
            )
            if getattr(self, name).get_secret_value() == DEFAULT_SECRET
        ]
        if defaulted:
            names = ", ".join(f"TSUNAGU_{n.upper()}" for n in defaulted)
            raise ValueError(f"production mode refuses default secrets; set {names}")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
