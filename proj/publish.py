"""Where validated records go: the store first (idempotent), then the live fan-out."""
from __future__ import annotations

import logging

from . import settings
from .fanout import fan_out
from .store import open_store

log = logging.getLogger("collector")
_store = None


def get_store():
    global _store
    if _store is None:
        _store = open_store(settings.database_url())
    return _store


def publish_records(records: list[dict]) -> int:
    """Write records idempotently and fan out the new ones; returns how many rows were new.

    Only what the store did not hold yet goes to live consumers: a poll of the last hour's
    trades, or a redelivered batch, tells them nothing twice. The store write raises (the
    caller retries: nothing is lost). A failed fan-out is only logged: consumers of a live
    feed want the next record, not this one again.
    """
    if not records:
        return 0
    new = get_store().write_new(records)
    try:
        fan_out(new)
    except Exception as exc:
        log.error("fan-out failed err=network records=%d detail=%s", len(new), exc)
    return len(new)
