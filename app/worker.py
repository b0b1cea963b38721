"""The worker process: imports every domain's task module and runs the huey consumer."""

from __future__ import annotations

import importlib

from app.core.jobs import huey

# Each domain that has background or periodic work lists its task module here.
TASK_MODULES = ["app.sessions.tasks", "connectors.tasks", "consent.tasks", "notify.tasks"]


def load_tasks() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def run_worker(*, workers: int) -> None:
    load_tasks()
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
    consumer.run()
