"""The exchange-agnostic part of the simulator: HTTP server, routing, fault engine, control API.

Exchange modules (see bitstamp.py) plug in through the small `Exchange` protocol:
`routes()` lists the paths they serve; the optional hooks `fault_body()` and
`huge_document()` render faults in that exchange's own shapes. When an exchange has no
opinion, the generic fallbacks here are used, so every fault kind works on every path,
even paths no exchange serves.
"""
from __future__ import annotations

import http
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Protocol, Sequence
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/_sim/"
JSON = "application/json"
HTML = "text/html; charset=utf-8"
MIB = 1024 * 1024

# Every fault kind with its own parameters and their defaults. Every kind also takes
# `times` (apply to the next N requests, then drop; default: until cleared) and
# `delay` (seconds to wait before answering).
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "hang": {"seconds": 60.0},
    "slow_body": {"seconds": 30.0, "interval": 0.5, "chunk_size": 4, "content_length": 1_000_000},
    "status": {"status": 500, "body": None, "content_type": None, "retry_after": None},
    "html": {"status": 200},
    "broken_json": {},
    "nan_json": {},
    "empty": {},
    "wrong_shape": {},
    "exchange_error": {"status": 200, "reason": None, "response_code": None},
    "huge": {"size": 20 * MIB, "chunked": False},
    "reset": {},
    "crossed": {},
    "unsorted": {},
    "bad_values": {},
    "delay": {},   # the normal answer, after `delay` seconds (default 1)
}
FAULT_KINDS = tuple(FAULT_DEFAULTS)

# Kinds whose body the exchange renders in its own shapes (see Exchange.fault_body).
EXCHANGE_RENDERED_KINDS = ("nan_json", "wrong_shape", "exchange_error", "crossed", "unsorted",
                           "bad_values")

CLOUDFLARE_ERROR_PAGE = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html class="no-js" lang="en-US">
<head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" />
<meta name="robots" content="noindex, nofollow" />
</head>
<body>
<div id="cf-wrapper">
  <div id="cf-error-details" class="cf-error-details-wrapper">
    <h1 data-translate="block_headline">Sorry, you have been blocked</h1>
    <h2 class="cf-subheadline">You are unable to access bitstamp.net</h2>
    <p>This website is using a security service to protect itself from online attacks.</p>
    <p>Cloudflare Ray ID: <strong class="font-semibold">8f1c2a3b4d5e6f70</strong></p>
  </div>
</div>
</body>
</html>
"""


def normalize_path(path: str) -> str:
    """The form paths are matched and counted in: no query, no trailing slash."""
    path = path.split("?", 1)[0]
    return path.rstrip("/") or "/"


# ---------------------------------------------------------------------------------------------
# What exchange modules see and return

@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(document: Any, status: int = 200) -> SimResponse:
    # Python's default separators (", " and ": ") are what Bitstamp's raw bodies use too.
    return SimResponse(status, json.dumps(document).encode())


def not_found_response() -> SimResponse:
    page = ("<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
            "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>"
            "</body></html>\n")
    return SimResponse(404, page.encode(), HTML)


@dataclass(frozen=True)
class Route:
    """`pattern` is a regex matched (fullmatch) against the path without its trailing slash;
    its named groups become `SimRequest.path_params`. `endpoint` names the route for the
    exchange's fault hooks (e.g. "order_book")."""
    pattern: str
    handler: Callable[["SimRequest"], SimResponse]
    endpoint: str
    methods: tuple[str, ...] = ("GET",)


@dataclass
class SimRequest:
    method: str
    path: str                        # as requested, without the query
    query: dict[str, str]            # first value of each query parameter
    path_params: dict[str, str]
    route: Route | None              # None: no exchange serves this path
    exchange: Any = None

    @property
    def endpoint(self) -> str | None:
        return self.route.endpoint if self.route else None


@dataclass
class HugeDocument:
    """A JSON document of arbitrary size: head, then items joined by separator, then tail.
    `items` may be endless; the server takes as many as fit and pads with whitespace."""
    head: bytes
    items: Iterator[bytes]
    tail: bytes
    separator: bytes = b", "


class Exchange(Protocol):
    def routes(self) -> list[Route]: ...

    # Optional hooks (looked up with getattr, so a module with only routes() is enough):
    #   fault_body(kind, request, params) -> bytes | None   for EXCHANGE_RENDERED_KINDS
    #   huge_document(request) -> HugeDocument | None        for "huge"


# ---------------------------------------------------------------------------------------------
# Faults and counters (shared by concurrent handler threads, hence the locks)

@dataclass
class Fault:
    path: str
    kind: str
    params: dict[str, Any]
    times: int | None = None         # requests left; None = until cleared
    delay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "times": self.times, "delay": self.delay,
                **self.params}


def make_fault(path: str, kind: str, times: int | None = None, delay: float | None = None,
               **params: Any) -> Fault:
    if kind not in FAULT_DEFAULTS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    unknown = set(params) - set(FAULT_DEFAULTS[kind])
    if unknown:
        allowed = ", ".join(["times", "delay", *FAULT_DEFAULTS[kind]])
        raise ValueError(f"fault {kind!r} takes no {', '.join(sorted(unknown))} (takes: {allowed})")
    if not path or not (path == "*" or path.startswith("/")):
        raise ValueError(f"fault path must start with '/' or be '*', got {path!r}")
    if times is not None and int(times) < 1:
        raise ValueError("times must be at least 1")
    if delay is None:
        delay = 1.0 if kind == "delay" else 0.0
    if float(delay) < 0:
        raise ValueError("delay must not be negative")
    return Fault(path, kind, {**FAULT_DEFAULTS[kind], **params},
                 None if times is None else int(times), float(delay))


def _match_rank(fault_path: str, request_path: str) -> int | None:
    """How specifically a fault path covers a request path (higher wins), or None.
    "*" covers everything; otherwise the fault path must equal the request path or be one
    of its parent directories ("/api/v2" covers "/api/v2/ticker/btcusd" but "/api/v2/ticker/btc"
    does not cover "/api/v2/ticker/btcusd")."""
    if fault_path == "*":
        return 0
    fault_path = normalize_path(fault_path)
    if fault_path == "/" or request_path == fault_path or request_path.startswith(fault_path + "/"):
        return len(fault_path)
    return None


class FaultTable:
    """Active faults. Faults on the same path queue up in the order they were set: the first
    one applies until its `times` run out, then the next."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self, path: str | None = None) -> int:
        with self._lock:
            keep = [] if path is None else [f for f in self._faults
                                            if normalize_path(f.path) != normalize_path(path)]
            cleared = len(self._faults) - len(keep)
            self._faults = keep
            return cleared

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take(self, path: str) -> Fault | None:
        """The fault that applies to this request, counting it against the fault's `times`."""
        request_path = normalize_path(path)
        if request_path.startswith(CONTROL_PREFIX.rstrip("/")):
            return None
        with self._lock:
            chosen, chosen_rank = None, -1
            for fault in self._faults:
                rank = _match_rank(fault.path, request_path)
                if rank is not None and rank > chosen_rank:   # ">" keeps the earliest of equals
                    chosen, chosen_rank = fault, rank
            if chosen is None:
                return None
            if chosen.times is not None:
                chosen.times -= 1
                if chosen.times <= 0:
                    self._faults.remove(chosen)
            return replace(chosen)


class RecentRequests:
    """A sliding window of request times: an exchange simulator's own rate limit
    (`rate_limit` = (count, seconds)), for modules that enforce one."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def over(self, rate_limit: tuple[int, float] | None) -> bool:
        """Count this request; True if it goes over the limit (it is then not counted)."""
        if not rate_limit:
            return False
        count, seconds = rate_limit
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] <= now - seconds:
                self._times.popleft()
            if len(self._times) >= count:
                return True
            self._times.append(now)
            return False


class RequestCounter:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._times: list[tuple[float, str]] = []   # (arrival, path): rate-limit tests read it
        self._lock = threading.Lock()

    def record(self, path: str) -> None:
        with self._lock:
            self._counts[normalize_path(path)] += 1
            self._times.append((time.time(), normalize_path(path)))
            del self._times[:-100_000]   # bounded: a long-running simulator keeps the newest

    def times(self, path: str | None = None) -> list[float]:
        with self._lock:
            return [at for at, seen in self._times
                    if path is None or seen == normalize_path(path)]

    def count(self, path: str | None = None) -> int:
        with self._lock:
            if path is None:
                return sum(self._counts.values())
            return self._counts.get(normalize_path(path), 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._times.clear()


class Router:
    def __init__(self, exchanges: Sequence[Exchange]) -> None:
        self._routes = [(re.compile(route.pattern), route, exchange)
                        for exchange in exchanges for route in exchange.routes()]

    def request(self, method: str, path: str, query_string: str) -> SimRequest:
        query = {key: values[0] for key, values in parse_qs(query_string).items()}
        normalized = normalize_path(path)
        for pattern, route, exchange in self._routes:
            match = pattern.fullmatch(normalized)
            if match:
                return SimRequest(method, path, query, match.groupdict(), route, exchange)
        return SimRequest(method, path, query, {}, None)


# ---------------------------------------------------------------------------------------------
# Generic fault bodies, for paths whose exchange does not render the kind itself

def _generic_fault_body(kind: str, params: dict[str, Any]) -> bytes | None:
    if kind == "nan_json":
        return b'{"timestamp": "0", "value": NaN}'
    if kind == "wrong_shape":
        return b'{"foo": 1}'
    if kind == "exchange_error":
        return json.dumps({"status": "error", "reason": params.get("reason") or "error"}).encode()
    return None   # crossed / unsorted / bad_values mean nothing here: answer normally


def _generic_huge_document() -> HugeDocument:
    filler = b'"' + b"x" * 62 + b'"'
    return HugeDocument(b'{"data": [', iter(lambda: filler, None), b"]}")


def _exact_size_blocks(document: HugeDocument, size: int, block_size: int = 256 * 1024
                       ) -> Iterator[bytes]:
    """Stream `document` as exactly max(size, len(head) + len(tail)) bytes without building it
    in memory: items while they fit, then whitespace (legal before the closing bracket)."""
    budget = size - len(document.head) - len(document.tail)
    yield document.head
    buffer = bytearray()
    first = True
    for item in document.items:
        piece = item if first else document.separator + item
        if len(piece) > budget:
            break
        buffer += piece
        budget -= len(piece)
        first = False
        if len(buffer) >= block_size:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer)
    while budget > 0:
        padding = min(budget, block_size)
        yield b" " * padding
        budget -= padding
    yield document.tail


def _status_page(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
            "</body>\r\n</html>\r\n")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# HTTP

class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive like the real thing, and chunked bodies
    server_version = "exchange-sim"
    timeout = 120                      # idle keep-alive connections end on their own
    # headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux) on a kept-alive connection, which no real exchange costs
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- plumbing ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._sent_status: int | None = None
        split = urlsplit(self.path)
        fault = None
        try:
            body = self._read_request_body()
            if split.path.startswith(CONTROL_PREFIX) or split.path == CONTROL_PREFIX.rstrip("/"):
                self._send(self.server.owner.control_response(self.command, split.path,
                                                              split.query, body))
                return
            self.server.owner.counter.record(split.path)
            fault = self.server.owner.faults.take(split.path)
            request = self.server.owner.router.request(self.command, split.path, split.query)
            if fault is None:
                self._send(self._normal_response(request))
            else:
                self._apply_fault(fault, request)
        except OSError:
            # The client left, timed out, or stop() cut the connection: nothing more to say.
            self.close_connection = True
        finally:
            self._log(fault)

    def _read_request_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _normal_response(self, request: SimRequest) -> SimResponse:
        if request.route is None:
            return not_found_response()
        if request.method not in request.route.methods:
            return json_response({"status": "error", "reason": "Method not allowed"}, 405)
        try:
            return request.route.handler(request)
        except Exception as error:   # a simulator bug must show, not kill the connection
            traceback.print_exc()
            return json_response({"status": "error", "reason": f"simulator error: {error!r}"}, 500)

    def _send(self, response: SimResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _wait(self, seconds: float) -> bool:
        """Sleep, but wake up when the server stops; True if it is stopping."""
        return self.server.stopping.wait(max(0.0, seconds))

    def version_string(self) -> str:
        return self.server_version

    def send_response(self, code: int, message: str | None = None) -> None:
        self._sent_status = code
        super().send_response(code, message)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass   # one line per request comes from _log, which also names the fault

    def log_message(self, format: str, *args: Any) -> None:
        self.server.owner.log(f"{self.client_address[0]} {format % args}")

    def _log(self, fault: Fault | None) -> None:
        status = self._sent_status if self._sent_status is not None else "-"
        suffix = f" fault={fault.kind}" if fault else ""
        self.server.owner.log(f"{self.command} {self.path} {status}{suffix}")

    # -- faults ---------------------------------------------------------------------------

    def _apply_fault(self, fault: Fault, request: SimRequest) -> None:
        if fault.delay and self._wait(fault.delay):
            self.close_connection = True
            return
        if fault.kind in EXCHANGE_RENDERED_KINDS:
            self._fault_exchange_rendered(fault, request)
        else:
            getattr(self, f"_fault_{fault.kind}")(fault, request)

    def _fault_delay(self, fault: Fault, request: SimRequest) -> None:
        self._send(self._normal_response(request))

    def _fault_hang(self, fault: Fault, request: SimRequest) -> None:
        self._wait(float(fault.params["seconds"]))
        self.close_connection = True

    def _fault_reset(self, fault: Fault, request: SimRequest) -> None:
        # Linger 0 turns close() into a TCP RST. The socket object only really closes once
        # rfile lets go of it (in finish()), and that must happen before the server's own
        # shutdown(SHUT_WR), which would send a polite FIN first.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _fault_status(self, fault: Fault, request: SimRequest) -> None:
        status = int(fault.params["status"])
        body, content_type = fault.params["body"], fault.params["content_type"]
        if body is None:
            body, content_type = _status_page(status), content_type or HTML
        headers = {}
        if fault.params["retry_after"] is not None:
            headers["Retry-After"] = str(fault.params["retry_after"])
        self._send(SimResponse(status, str(body).encode(), content_type or "text/plain", headers))

    def _fault_html(self, fault: Fault, request: SimRequest) -> None:
        self._send(SimResponse(int(fault.params["status"]), CLOUDFLARE_ERROR_PAGE.encode(), HTML))

    def _fault_empty(self, fault: Fault, request: SimRequest) -> None:
        self._send(SimResponse(200, b""))

    def _fault_broken_json(self, fault: Fault, request: SimRequest) -> None:
        normal = self._normal_response(request)
        if normal.status == 200 and normal.content_type == JSON and len(normal.body) > 2:
            # Half of a JSON object or array is never valid: the closing bracket is missing.
            body = normal.body[: len(normal.body) // 2]
        else:
            body = b'{"timestamp": "17'
        self._send(SimResponse(200, body))

    def _fault_exchange_rendered(self, fault: Fault, request: SimRequest) -> None:
        render = getattr(request.exchange, "fault_body", None)
        body = render(fault.kind, request, fault.params) if render else None
        if body is None:
            body = _generic_fault_body(fault.kind, fault.params)
        if body is None:
            self._send(self._normal_response(request))
            return
        status = int(fault.params["status"]) if fault.kind == "exchange_error" else 200
        self._send(SimResponse(status, body))

    def _fault_slow_body(self, fault: Fault, request: SimRequest) -> None:
        normal = self._normal_response(request)
        source = normal.body if normal.status == 200 else b""
        content_length = int(fault.params["content_length"])
        chunk_size = max(1, int(fault.params["chunk_size"]))
        interval = float(fault.params["interval"])
        deadline = time.monotonic() + float(fault.params["seconds"])
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(content_length))
        self.end_headers()
        sent = 0
        while sent < content_length and time.monotonic() < deadline:
            # The real body first, then spaces, so what arrives stays plausible JSON text.
            size = min(chunk_size, content_length - sent)
            self.wfile.write(source[sent:sent + size].ljust(size, b" "))
            sent += size
            if self._wait(interval):
                break
        self.close_connection = True   # whatever was promised and not sent stays missing

    def _fault_huge(self, fault: Fault, request: SimRequest) -> None:
        build = getattr(request.exchange, "huge_document", None)
        document = (build(request) if build else None) or _generic_huge_document()
        size = int(fault.params["size"])
        chunked = _as_bool(fault.params["chunked"])
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length",
                             str(max(size, len(document.head) + len(document.tail))))
        self.end_headers()
        for block in _exact_size_blocks(document, size):
            if not block:
                continue   # an empty chunk would end a chunked body early
            if self.server.stopping.is_set():
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n%b\r\n" % (len(block), block) if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections and handler threads, so stop()
    can cut hung or idle keep-alive connections and wait for the threads with a deadline."""
    daemon_threads = True
    block_on_close = False   # stop() joins the threads itself, with a deadline

    def __init__(self, address: tuple[str, int], owner: "SimServer") -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._serial = 0
        super().__init__(address, _RequestHandler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        with self._lock:
            self._serial += 1
            thread = threading.Thread(target=self._serve_connection,
                                      args=(request, client_address), daemon=True,
                                      name=f"sim-conn-{self._serial}")
            self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.stopping.is_set():
            return   # clients leaving mid-answer are business as usual here
        super().handle_error(request, client_address)

    def abort_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------------------
# The public object

class SimServer:
    """The simulator serving the given exchanges. See proj.sim.Simulator for the one with
    every known exchange preloaded."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 exchanges: Sequence[Exchange] = (), log_requests: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.log_requests = log_requests
        self.router = Router(exchanges)
        self.faults = FaultTable()
        self.counter = RequestCounter()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "SimServer":
        if self._httpd is not None:
            raise RuntimeError("simulator already started")
        self._httpd = _HTTPServer((self.host, self.requested_port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="sim-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()         # wakes hanging, dripping and delayed handlers
        httpd.shutdown()             # no new connections
        httpd.abort_connections()    # wakes handlers blocked on a socket
        httpd.server_close()
        httpd.join_handlers(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "SimServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("simulator not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- faults and counts --------------------------------------------------------------------

    def set_fault(self, path: str, kind: str, **params: Any) -> dict[str, Any]:
        """Inject `kind` on requests to `path` (exact, with or without trailing slash; a parent
        directory such as "/api/v2/"; or "*"). Returns the fault as stored."""
        fault = make_fault(path, kind, **params)
        self.faults.add(fault)
        return fault.to_dict()

    def clear_faults(self, path: str | None = None) -> int:
        return self.faults.clear(path)

    def list_faults(self) -> list[dict[str, Any]]:
        return self.faults.snapshot()

    def request_count(self, path: str | None = None) -> int:
        """Requests seen (control requests excluded): for one path, or in total."""
        return self.counter.count(path)

    def request_times(self, path: str | None = None) -> list[float]:
        """Arrival times (epoch seconds) of the requests seen, for one path or all."""
        return self.counter.times(path)

    def reset_counts(self) -> None:
        self.counter.reset()

    def log(self, line: str) -> None:
        if self.log_requests:
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} sim {line}\n")

    # -- the HTTP control API -------------------------------------------------------------------

    def control_response(self, method: str, path: str, query_string: str, body: bytes
                         ) -> SimResponse:
        query = {key: values[0] for key, values in parse_qs(query_string).items()}
        target = normalize_path(path)
        try:
            if target == "/_sim/faults" and method == "GET":
                return json_response({"faults": self.list_faults()})
            if target == "/_sim/faults" and method == "POST":
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict) or "path" not in spec or "kind" not in spec:
                    raise ValueError('expected a JSON object with "path" and "kind"')
                return json_response({"fault": self.set_fault(**spec)})
            if target == "/_sim/faults" and method == "DELETE":
                return json_response({"cleared": self.clear_faults(query.get("path"))})
            if target == "/_sim/stats" and method == "GET":
                return json_response({"requests": self.counter.snapshot()})
            if target == "/_sim/stats" and method == "DELETE":
                self.reset_counts()
                return json_response({"requests": {}})
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, 400)
        return json_response({"error": f"no control endpoint {method} {path}",
                              "endpoints": ["GET/POST/DELETE /_sim/faults",
                                            "GET/DELETE /_sim/stats"]}, 404)
