"""Fetch → validate → publish as plain functions: the tasks, the CLI and the tests call these.

`fetch_raw` is one HTTP attempt and decides what the answer means (status, content type,
the exchange's error envelope); `normalize` is pure; `publish` writes the store. Retrying is
the caller's: Celery's retry in the tasks, `fetch_records`' loop in the CLI, both waiting
`retry_delay`.
"""
from __future__ import annotations

import logging
import random
import time

from . import http, metrics, ratelimit, settings
from .exchanges import get_exchange
from .exchanges.base import decode_json
from .records import KINDS, SYMBOL_RE, TIMEFRAMES, CollectorError

log = logging.getLogger("collector")
RATE_LIMIT_PAUSE = 1.0   # seconds every worker pauses after a 429 that names no Retry-After
SMALL_BODY = 4096        # error envelopes are small; data bodies are checked when parsed


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _positive(name: str, value, kind=int):
    """None, or a positive number of the right kind; a backend's "5" is refused, not guessed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) \
            or value <= 0:
        raise CollectorError("unsupported", f"{name} must be a positive {kind.__name__}, "
                             f"not {value!r:.40}")
    return value


def check_request(exchange: str, kind: str, symbol: str, timeframe: str | None = None,
                  limit=None, timeout=None, attempts=None) -> dict:
    """Normalize a request's arguments, or CollectorError('unsupported') saying what is wrong."""
    _positive("limit", limit)
    _positive("timeout", timeout, float)
    _positive("attempts", attempts)
    if not all(isinstance(v, str) for v in (exchange, kind, symbol)):
        raise CollectorError("unsupported", "exchange, type and symbol must be strings")
    exchange, symbol = (exchange or "").lower(), (symbol or "").upper()
    get_exchange(exchange)
    if kind not in KINDS:
        raise CollectorError("unsupported", f"unknown type {kind!r} (one of {', '.join(KINDS)})")
    if not SYMBOL_RE.fullmatch(symbol):
        raise CollectorError("unsupported", f"symbol {symbol!r} is not BASE/QUOTE")
    if kind == "candles":
        timeframe = timeframe or "1h"
        if timeframe not in TIMEFRAMES:
            raise CollectorError("unsupported", f"unknown timeframe {timeframe!r}")
    else:
        timeframe = None
    return {"exchange": exchange, "type": kind, "symbol": symbol, "timeframe": timeframe}


def rest_base_url(exchange: str, override: str | None = None) -> str:
    return (override or settings.rest_url(exchange, get_exchange(exchange).rest_url)).rstrip("/")


def limits(timeout: float | None = None) -> http.Limits:
    deadline = timeout or settings.fetch_timeout()
    return http.Limits(read_timeout=deadline, deadline=deadline,
                       max_bytes=settings.max_body_bytes())


def fetch_raw(exchange: str, kind: str, symbol: str, timeframe: str | None = None,
              limit: int | None = None, base_url: str | None = None,
              timeout: float | None = None) -> dict:
    """One attempt: the exchange's answer as {"body": text, "received": ms, ...} or CollectorError."""
    request = check_request(exchange, kind, symbol, timeframe, limit, timeout)
    adapter = get_exchange(request["exchange"])
    path, query = adapter.rest_request(kind, request["symbol"], request["timeframe"], limit)
    attempt_limits = limits(timeout)
    # the exchange's budget is shared by every worker: wait for room, within this attempt
    ratelimit.acquire(adapter, adapter.request_weight(kind, limit), max_wait=attempt_limits.deadline)
    response = http.get(rest_base_url(request["exchange"], base_url) + path, query, attempt_limits)
    received = now_ms()
    used = adapter.used_weight(response.headers)
    if used is not None:
        ratelimit.observe_used(adapter, used)
    try:
        _check_response(adapter, response)
    except CollectorError as error:
        if error.code == "rate_limited":   # slow down every worker of this exchange, not just this one
            ratelimit.pause(adapter, error.retry_after if error.retry_after is not None
                            else RATE_LIMIT_PAUSE)
        raise
    try:
        body = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise CollectorError("bad_json", "body is not UTF-8") from None
    return {**request, "limit": limit, "received": received, "body": body}


def _check_response(adapter, response: http.Response) -> None:
    status = response.status
    if status in (429, 418):   # 418: Binance's "you ignored the 429s"
        raise CollectorError("rate_limited", f"HTTP {status} from {response.url}", status=status,
                             retry_after=response.retry_after())
    if not 200 <= status < 300:
        if response.is_json:
            envelope = _envelope(adapter, response.body)
            if envelope is not None:
                reason, rate_limit = envelope
                raise CollectorError("rate_limited" if rate_limit else "exchange_error", reason,
                                     status=status, retry_after=response.retry_after())
        raise CollectorError("http_status", f"HTTP {status} from {response.url}", status=status)
    if not response.is_json:
        raise CollectorError("content_type", f"{response.content_type or 'no content type'} "
                             f"from {response.url}, not JSON")
    if len(response.body) <= SMALL_BODY:   # "too many requests" inside HTTP 200 (Kraken): a small body
        envelope = _envelope(adapter, response.body)
        if envelope is not None and envelope[1]:
            raise CollectorError("rate_limited", envelope[0], status=status)


def _envelope(adapter, body: bytes) -> tuple[str, bool] | None:
    """(reason, is it a rate limit) if the body is the exchange's error envelope."""
    try:
        doc = decode_json(body)
    except CollectorError:
        return None
    reason = adapter.error_reason(doc)
    return None if reason is None else (reason, adapter.is_rate_limit_error(doc))


def normalize(raw: dict):
    """The validate step: raw answer to records (dict or list), or CollectorError. Pure."""
    adapter = get_exchange(raw["exchange"])
    return adapter.parse_rest(raw["type"], raw["body"].encode("utf-8"), raw["symbol"],
                              raw["received"], timeframe=raw.get("timeframe"),
                              limit=raw.get("limit"))


def retry_delay(error: CollectorError, retries_done: int) -> float:
    """Exponential backoff with full jitter; never sooner than the exchange's Retry-After."""
    ceiling = min(settings.backoff_cap(), settings.backoff_base() * 2 ** retries_done)
    delay = random.uniform(0, ceiling)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def should_retry(error: CollectorError, attempt: int, attempts: int) -> bool:
    """Retry what can pass, while attempts remain, unless the exchange asks for a longer
    pause than a caller should wait (then the answer is rate_limited, now)."""
    if not error.retryable or attempt >= attempts:
        return False
    return error.retry_after is None or error.retry_after <= settings.retry_after_max()


def log_failure(error: CollectorError, attempt: int, final: bool, **context) -> None:
    if final:
        metrics.count_error(context.get("exchange"), error.code)
    fields = " ".join(f"{k}={v}" for k, v in context.items() if v is not None)
    log.warning("fetch %s err=%s attempt=%d %s detail=%s",
                "failed" if final else "will retry", error.code, attempt, fields, error.detail)


def fetch_records(exchange: str, kind: str, symbol: str, timeframe: str | None = None,
                  limit: int | None = None, base_url: str | None = None,
                  timeout: float | None = None, attempts: int | None = None):
    """Fetch and validate in this process, retrying what can pass: records, or the error object."""
    context = {"exchange": exchange, "symbol": symbol, "type": kind}
    try:
        check_request(exchange, kind, symbol, timeframe, limit, timeout, attempts)
    except CollectorError as error:
        log_failure(error, 1, True, **context)
        return error.to_dict(attempts=1, **context)
    attempts = attempts or settings.fetch_attempts()
    for attempt in range(1, attempts + 1):
        try:
            return normalize(fetch_raw(exchange, kind, symbol, timeframe, limit, base_url, timeout))
        except CollectorError as error:
            final = not should_retry(error, attempt, attempts)
            log_failure(error, attempt, final, **context)
            if final:
                return error.to_dict(attempts=attempt, **context)
            time.sleep(retry_delay(error, attempt - 1))
