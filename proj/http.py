"""The one place that talks HTTP: pooled session, deadlines, size cap, error codes.

`get()` returns the status, content type and body of any answer the server completes, and
raises CollectorError only for what happened on the wire (`timeout`, `network`,
`too_large`). Deciding what a status or a body means is the caller's (proj.collect).
"""
from __future__ import annotations

import email.utils
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .records import CollectorError

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
USER_AGENT = "market-data-collector/1.0"
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    deadline: float = 15.0   # the whole attempt, body included: a dripping body cannot stretch it
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class Response:
    url: str
    status: int
    content_type: str          # media type only, lower case: "application/json"
    body: bytes
    headers: dict = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        return self.content_type == "application/json" or self.content_type.endswith("+json")

    def retry_after(self) -> float | None:
        """Seconds to wait, from Retry-After as seconds or as an HTTP-date."""
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None


# ---- the deadline -----------------------------------------------------------------------------
# Socket timeouts bound each receive, not the request: a server dripping its headers or a
# gzip header one byte at a time would stretch an attempt without end. A watchdog timer
# shuts the request's socket down when the deadline passes, wherever the request is.

_local = threading.local()


class _Watchdog:
    def __init__(self, seconds: float):
        self.fired = False
        self.connection = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self):
        _local.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _local.watchdog = None

    def watch(self, connection) -> None:
        self.connection = connection
        if self.fired:
            self._fire()

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        watchdog = getattr(_local, "watchdog", None)
        if watchdog is not None:
            watchdog.watch(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    request = _WatchedHTTPConnection.request


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


def session() -> requests.Session:
    """One pooled session per thread and process (a forked worker must not share sockets)."""
    sess = getattr(_local, "session", None)
    if sess is None or _local.pid != os.getpid():
        sess = requests.Session()
        for prefix in ("http://", "https://"):
            sess.mount(prefix, _WatchedAdapter())
        sess.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json",
                             "Accept-Encoding": "gzip, deflate"})
        _local.session, _local.pid = sess, os.getpid()
    return sess


def get(url: str, params: dict | None = None, limits: Limits = Limits()) -> Response:
    ends = time.monotonic() + limits.deadline
    sess = session()
    with _Watchdog(limits.deadline) as watchdog:
        try:
            try:
                raw_response = sess.get(
                    url, params=params, stream=True, allow_redirects=False,
                    timeout=(min(limits.connect_timeout, limits.deadline),
                             min(limits.read_timeout, limits.deadline)))
            except requests.exceptions.Timeout as exc:   # before ConnectionError: ConnectTimeout is both
                raise CollectorError("timeout", f"no answer from {url}: {type(exc).__name__}") from None
            except requests.exceptions.RequestException as exc:
                raise CollectorError("network", f"{url}: {_reason(exc)}") from None
            with raw_response:
                body = _read_body(raw_response, url, ends, limits)
                headers = {k.lower(): v for k, v in raw_response.headers.items()}
        except CollectorError:
            if watchdog.fired:   # whatever the cut socket looked like, the cause was the deadline
                raise CollectorError("timeout", f"{url}: no complete answer within "
                                     f"{limits.deadline:g}s") from None
            raise
        if watchdog.fired:       # the cut may also look like a clean, short end of the body
            raise CollectorError("timeout", f"{url}: no complete answer within {limits.deadline:g}s")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return Response(url=raw_response.url, status=raw_response.status_code,
                    content_type=content_type, body=body, headers=headers)


def _read_body(response: requests.Response, url: str, ends: float, limits: Limits) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise CollectorError("too_large", f"{url}: Content-Length {declared} over {limits.max_bytes}")
    raw = response.raw
    chunks, size = [], 0
    try:
        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise CollectorError("timeout", f"{url}: body not complete within {limits.deadline}s")
            _bound_next_read(raw, min(limits.read_timeout, remaining))
            # read1 returns as soon as some bytes arrive, so the deadline is checked per receive
            chunk = raw.read1(_READ_CHUNK, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limits.max_bytes:   # counted after decompression: a gzip bomb is caught too
                raise CollectorError("too_large", f"{url}: body over {limits.max_bytes} bytes")
            chunks.append(chunk)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise CollectorError("timeout", f"{url}: body stalled") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CollectorError("network", f"{url}: body cut off: {_reason(exc)}") from None


def _bound_next_read(raw, seconds: float) -> None:
    """Shrink the socket timeout to what is left of the deadline."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _reason(exc: BaseException) -> str:
    # requests nests urllib3's errors; the innermost says what happened (refused, reset, DNS)
    inner = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return text.splitlines()[0][:200]
