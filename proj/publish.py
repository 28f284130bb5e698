"""Where validated records go: the store (one per process, opened on first use)."""
from __future__ import annotations

from . import settings
from .store import open_store

_store = None


def get_store():
    global _store
    if _store is None:
        _store = open_store(settings.database_url())
    return _store


def publish_records(records: list[dict]) -> int:
    """Write records idempotently; returns how many rows were new."""
    return get_store().write(records) if records else 0
