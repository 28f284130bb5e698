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


def retry_after_max() -> float:
    """The longest Retry-After a fetch waits out; a longer ban is answered as rate_limited."""
    return float(_env("COLLECTOR_RETRY_AFTER_MAX", "60"))


def max_body_bytes() -> int:
    return int(_env("COLLECTOR_MAX_BODY_BYTES", str(16 * 1024 * 1024)))


def log_level() -> str:
    return _env("LOG_LEVEL", "INFO").upper()


def redis_url() -> str | None:
    """Redis for live fan-out (pub/sub, latest books) and the shared state; none = files."""
    return _env("COLLECTOR_REDIS_URL")


def ws_url(exchange: str, default: str) -> str:
    """COLLECTOR_<EXCHANGE>_WS_URL points every streamer of that exchange elsewhere."""
    return _env(f"COLLECTOR_{exchange.upper()}_WS_URL", default)


def max_silence() -> float:
    """Seconds a channel may go without data before its connection is replaced."""
    return float(_env("MAX_SILENCE_DURATION", "30"))


def reconnect_delay() -> float:
    """Base of the streamers' reconnect and restart backoff, in seconds."""
    return float(_env("RECONNECT_DELAY", "1"))


def reconnect_delay_cap() -> float:
    return float(_env("COLLECTOR_RECONNECT_DELAY_CAP", "60"))


def backend_task() -> tuple[str, str] | None:
    """(task name, queue) to send every record to as a background job, if configured."""
    name = _env("COLLECTOR_BACKEND_TASK")
    return (name, _env("COLLECTOR_BACKEND_QUEUE", "backend")) if name else None


def error_threshold() -> int:
    """Errors in a row after which a collector is unhealthy."""
    return int(_env("COLLECTOR_ERROR_THRESHOLD", "5"))


def max_reconnect_attempts() -> int:
    """Restarts in a row (supervisor or health check) before a streamer is marked failed."""
    return int(_env("MAX_RECONNECT_ATTEMPTS", "10"))


def health_check_interval() -> float:
    return float(_env("DEFAULT_HEALTH_CHECK_INTERVAL", "30"))


def log_dir() -> Path | None:
    """Where rotating log files go (e.g. logs/); unset: stderr only."""
    value = _env("COLLECTOR_LOG_DIR")
    return Path(value).resolve() if value else None


def log_max_files() -> int:
    return int(_env("LOG_MAX_FILES", "5"))


def log_max_bytes() -> int:
    return int(_env("COLLECTOR_LOG_MAX_BYTES", str(10 * 1024 * 1024)))


def log_cleanup() -> bool:
    return (_env("LOG_CLEANUP", "false") or "").lower() in ("1", "true", "yes", "on")
