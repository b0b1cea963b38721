"""The deployment files stay consistent with the code: compose services, image contents, CI."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_database_app_worker_and_stand_ins() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert {"db", "migrate", "app", "worker", "mocks"} <= set(compose["services"])
    app_env = compose["services"]["app"]["environment"]
    assert app_env["TSUNAGU_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_image_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, f"Dockerfile does not copy {package}/"


def test_ci_runs_make_test_on_postgresql() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci and "TEST_DATABASE_URL" in ci
