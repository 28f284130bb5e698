"""Where validated records go: the store first (idempotent), then the live fan-out."""
from __future__ import annotations

import logging
import time

from . import metrics, settings
from .fanout import fan_out
from .state import open_state
from .store import open_store

log = logging.getLogger("collector")
_store = None
_state = None


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
    metrics.count_published(records, time.time_ns() // 1_000_000)
    try:
        metrics.note_fresh_data(get_state(), records)
    except Exception as exc:   # freshness is for health checks; the data is already safe
        log.error("freshness not recorded: %s", exc)
    try:
        fan_out(new)
    except Exception as exc:
        log.error("fan-out failed err=network records=%d detail=%s", len(new), exc)
    return len(new)


def get_state():
    global _state
    if _state is None:
        _state = open_state()
    return _state
