"""Everything the collector reads from the environment, with the embedded defaults.

With nothing set, all state lives under one data folder (var/ beside the code): kombu's
filesystem broker, Celery's file result backend and a SQLite store. Setting
COLLECTOR_BROKER_URL, COLLECTOR_RESULT_BACKEND and COLLECTOR_DATABASE_URL moves the same
code onto RabbitMQ/Redis, Redis and PostgreSQL.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def data_dir() -> Path:
    return Path(_env("COLLECTOR_DATA_DIR", str(PROJECT_DIR / "var"))).resolve()


def broker_url() -> str:
    return _env("COLLECTOR_BROKER_URL", "filesystem://localhost/")


def result_backend() -> str:
    return _env("COLLECTOR_RESULT_BACKEND", f"file://{data_dir() / 'results'}")


def database_url() -> str:
    return _env("COLLECTOR_DATABASE_URL", f"sqlite:///{data_dir() / 'collector.db'}")


def collectors_file() -> Path:
    return Path(_env("COLLECTOR_CONFIG", str(PROJECT_DIR / "collectors.toml")))


def rest_url(exchange: str, default: str) -> str:
    """COLLECTOR_<EXCHANGE>_REST_URL points every process at another host (the simulator)."""
    return _env(f"COLLECTOR_{exchange.upper()}_REST_URL", default)


def fetch_attempts() -> int:
    return int(_env("COLLECTOR_FETCH_ATTEMPTS", "3"))


def fetch_timeout() -> float:
    """Seconds one attempt may take in all, body included."""
    return float(_env("COLLECTOR_FETCH_TIMEOUT", "10"))


def backoff_base() -> float:
    return float(_env("COLLECTOR_BACKOFF_BASE", "0.5"))


def backoff_cap() -> float:
    return float(_env("COLLECTOR_BACKOFF_CAP", "30"))


def max_body_bytes() -> int:
    return int(_env("COLLECTOR_MAX_BODY_BYTES", str(16 * 1024 * 1024)))


def log_level() -> str:
    return _env("LOG_LEVEL", "INFO").upper()
