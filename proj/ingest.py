"""Streamed frames to records, in the worker: each frame parsed once, bad ones counted and
logged, never allowed to sink the rest of their batch."""
from __future__ import annotations

import logging
from collections import Counter

from . import metrics
from .exchanges import get_exchange
from .records import CollectorError

log = logging.getLogger("collector")


def normalize_frames(exchange: str, frames: list) -> tuple[list, Counter]:
    """[[received_ms, text], ...] -> (records, error counts by code)."""
    adapter = get_exchange(exchange)
    records, errors = [], Counter()
    for received, text in frames:
        try:
            records.extend(adapter.parse_ws(text, received))
        except CollectorError as error:
            errors[error.code] += 1
            metrics.count_error(exchange, error.code)
            log.warning("frame refused err=%s exchange=%s detail=%s frame=%.200s",
                        error.code, exchange, error.detail, text)
    return records, errors
