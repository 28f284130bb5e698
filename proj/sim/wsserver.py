"""The exchange-agnostic websocket half of the simulator: one port for every exchange, routed by
path prefix, one session per connection, scripted message streams, and the websocket fault
engine (drop, stall, request_reconnect, garbage, refuse).

Exchange modules (see bitstamp_ws.py) plug in through the small `WsExchange` protocol:
`ws_routes()` lists the path prefixes they serve ("/bitstamp", later "/binance/stream", ...),
`on_message(session, message)` answers what a client sends. They talk back through the
`WsSession` they are handed (send, subscribe, unsubscribe) and the `WsServer` (broadcast to a
channel's subscribers, run a script). The optional hooks `start(server)`, `stop()`,
`on_open(session)`, `on_close(session)`, `garbage_frames(session, count)` and
`reconnect_frame(session)` are looked up with getattr; without them generic fallbacks apply.

Every connection has its own writer thread and queue, so a client that stops reading only
stalls itself, and whatever a fault does to a connection (drop, stall) is decided between two
whole frames: a frame is either sent completely or not at all.

Built on websockets' threaded server (websockets.sync.server.serve). Stdlib + websockets only;
nothing else of `proj` is imported.
"""
from __future__ import annotations

import http
import logging
import math
import socket
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence, Union

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

Frame = Union[str, bytes]   # str goes out as a text frame, bytes as a binary frame

# Every websocket fault kind with its own parameters and their defaults. Every kind also takes
# `exchange`, `at_trade`, `times` and `pair` (see WsServer.set_fault).
WS_FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "drop": {},
    # seconds=None: until the client closes the connection. answer_pings=True: the websocket
    # library still answers protocol-level pings with pongs (as a load balancer in front of a
    # hung backend would); False swallows the pongs too, so nothing at all comes back.
    "stall": {"seconds": None, "answer_pings": True},
    "request_reconnect": {"grace": 2.0},
    "garbage": {"count": 3},
    # status=0: close the TCP connection instead of answering the handshake
    "refuse": {"seconds": 3.0, "status": 503},
}
WS_FAULT_KINDS = tuple(WS_FAULT_DEFAULTS)

# Kinds after which a scripted trade no longer goes to the connection that was about to send it.
# request_reconnect is not one: the old connection keeps serving (and receiving the script)
# until the client has a newer connection subscribed to the same channel.
_MOVING_KINDS = ("drop", "stall")

MAX_QUEUE = 10_000        # frames waiting for one connection's writer before new ones are lost
DROP_LINGER = 5.0         # after a drop, how long the client gets to close its end
POLL = 0.1                # how often a connection's reader looks at its deadlines

_LOGGER = logging.getLogger("exchange_sim.ws")


# ---------------------------------------------------------------------------------------------
# What exchange modules provide and see

@dataclass(frozen=True)
class WsRoute:
    """A path prefix served by an exchange: "/bitstamp" matches "/bitstamp", "/bitstamp/" and
    "/bitstamp/anything" (query strings ignored). The longest matching prefix wins. `endpoint`
    names the route for the exchange's own use (one exchange may serve several)."""
    prefix: str
    endpoint: str = ""


class WsExchange(Protocol):
    name: str

    def ws_routes(self) -> list[WsRoute]: ...

    def on_message(self, session: "WsSession", message: Frame) -> None: ...

    # Optional hooks (looked up with getattr):
    #   start(server: WsServer) / stop()                 background threads (lively data)
    #   on_open(session) / on_close(session)
    #   garbage_frames(session, count) -> list[Frame]    for the "garbage" fault
    #   reconnect_frame(session) -> Frame | None         for the "request_reconnect" fault


def _normalize_prefix(prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ValueError(f"websocket route prefix must start with '/', got {prefix!r}")
    return prefix.rstrip("/")


def generic_garbage(count: int) -> list[Frame]:
    """Garbage for an exchange without an opinion: non-JSON text, a binary frame, JSON of an
    unknown event, JSON of the wrong shape; repeated to `count` frames."""
    kinds: list[Frame] = ['{"event": "trade", "data": {"id": 1', b"\x00\x9f\xffnot text\x81",
                          '{"event":"sim:unknown_event","channel":"","data":{}}', '[1, 2, 3]']
    return [kinds[i % len(kinds)] for i in range(count)]


# ---------------------------------------------------------------------------------------------
# One connection

class _SimConnection(ServerConnection):
    """websockets' ServerConnection whose outgoing bytes the fault engine can swallow: after a
    drop (the TCP stream is already ended, so nothing may be written, not even a pong, or the
    write error would turn into a reset), and during a stall with answer_pings=False."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set before super().__init__, which starts the thread that calls send_data.
        self.sim_dropped = False
        self.sim_mute_until = 0.0
        self.sim_target: tuple[Any, WsRoute, str] | None = None   # set in process_request
        super().__init__(*args, **kwargs)

    def send_data(self) -> None:
        if self.sim_dropped or (self.sim_mute_until and self.protocol.state is State.OPEN
                                and time.monotonic() < self.sim_mute_until):
            for _ in self.protocol.data_to_send():
                pass   # whole frames: the stream stays well-formed when writing resumes
            return
        super().send_data()


class _Sent:
    """Whether one tracked frame went out (set by the writer thread)."""
    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False

    def finish(self, ok: bool) -> None:
        self.ok = ok
        self.event.set()


class WsSession:
    """One accepted websocket connection. Exchanges send with `send` (queued, in order, never
    blocking) and record subscriptions with `subscribe` / `unsubscribe` (send the ack first).
    `data` is free for the exchange's own per-connection state."""

    def __init__(self, server: "WsServer", exchange: Any, route: WsRoute, path: str,
                 connection: _SimConnection, serial: int) -> None:
        self.server = server
        self.exchange = exchange
        self.exchange_name: str = exchange.name
        self.route = route
        self.path = path
        self.connection = connection
        self.serial = serial
        self.opened_at = time.monotonic()
        self.data: dict[str, Any] = {}
        self.subscriptions: dict[str, int] = {}   # channel -> subscription serial (server lock)
        self.ever_subscribed = False               # (server lock)
        self.frames_sent = 0
        self.closed = False
        self.dropped = False
        self.dropped_at = 0.0
        self.stalled_until: float | None = None    # monotonic; math.inf = until the client closes
        self.close_at: float | None = None         # monotonic; set by request_reconnect
        self.closing = False                       # the server started the closing handshake
        self._cond = threading.Condition()
        self._queue: deque[tuple[Frame, _Sent | None]] = deque()
        self._enqueued = 0
        self._written = 0                          # taken off the queue: sent or discarded
        self._write_lock = threading.Lock()        # a frame's "may I" check and its send
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"sim-ws-writer-{serial}")

    def __repr__(self) -> str:
        return f"<WsSession #{self.serial} {self.exchange_name} {self.path}>"

    # -- state ----------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self.closed and not self.dropped

    @property
    def stalled(self) -> bool:
        until = self.stalled_until
        return until is not None and time.monotonic() < until

    @property
    def usable(self) -> bool:
        """Alive, not stalled, websocket open, not about to be closed: fit to receive a script."""
        close_at = self.close_at
        return (self.alive and not self.closing and not self.stalled
                and self.connection.state is State.OPEN
                and (close_at is None or time.monotonic() < close_at))

    def channels(self) -> list[str]:
        return self.server.session_channels(self)

    # -- sending --------------------------------------------------------------------------------

    def send(self, frame: Frame) -> bool:
        """Queue a frame for this connection; False if it cannot go out (closed, dropped,
        stalled). Frames go out in the order they were queued."""
        return self._enqueue(frame, None)

    def queued(self) -> int:
        """Frames waiting for this connection's writer."""
        return len(self._queue)

    def send_tracked(self, frame: Frame) -> _Sent:
        sent = _Sent()
        if not self._enqueue(frame, sent):
            sent.finish(False)
        return sent

    def _enqueue(self, frame: Frame, sent: _Sent | None) -> bool:
        with self._cond:
            if not self.alive or self.stalled:
                return False
            if sent is None and len(self._queue) >= MAX_QUEUE:
                self.server._count("discarded", self.exchange_name)
                return False
            self._queue.append((frame, sent))
            self._enqueued += 1
            self._cond.notify_all()
            return True

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued so far was sent (or discarded)."""
        with self._cond:
            target = self._enqueued
            return self._cond.wait_for(lambda: self._written >= target or not self.alive, timeout)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or not self.alive)
                if not self.alive:
                    pending = list(self._queue)
                    self._queue.clear()
                    self._written += len(pending)
                    self._cond.notify_all()
                    for _, sent in pending:
                        if sent is not None:
                            sent.finish(False)
                    return
                frame, sent = self._queue.popleft()
            ok = False
            with self._write_lock:
                if self.alive and not self.stalled:
                    try:
                        self.connection.send(frame)
                        ok = True
                    except ConnectionClosed:
                        pass
                    except Exception:   # a socket error, or a simulator bug: show it
                        if not self.server.stopping:
                            traceback.print_exc()
            if ok:
                self.frames_sent += 1
                self.server._count("frames", self.exchange_name)
            if sent is not None:
                sent.finish(ok)
            with self._cond:
                self._written += 1
                self._cond.notify_all()

    # -- subscriptions (the exchange sends its ack first, then records the subscription) --------

    def subscribe(self, channel: str) -> None:
        self.server._subscribe(self, channel)

    def unsubscribe(self, channel: str) -> None:
        self.server._unsubscribe(self, channel)

    # -- faults -----------------------------------------------------------------------------------

    def drop(self) -> None:
        """End the TCP stream (FIN after everything already sent, no close frame), then write
        nothing more, not even pongs. The reader keeps draining what the client sends, so
        closing the socket later does not turn into a reset that could destroy frames the
        client has not read yet."""
        if not self.alive:
            return
        got_write_lock = self._write_lock.acquire(timeout=1.0)   # no frame half-sent
        try:
            with self._cond:
                self.dropped = True
                self.dropped_at = time.monotonic()
                self._cond.notify_all()
            connection = self.connection
            got_mutex = connection.protocol_mutex.acquire(timeout=1.0)   # no pong half-sent
            try:
                connection.sim_dropped = True
                try:
                    connection.socket.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            finally:
                if got_mutex:
                    connection.protocol_mutex.release()
        finally:
            if got_write_lock:
                self._write_lock.release()
        self.server._changed_sessions()

    def stall(self, seconds: float | None, answer_pings: bool = True) -> None:
        until = math.inf if seconds is None else time.monotonic() + float(seconds)
        with self._write_lock:
            self.stalled_until = until
            if not answer_pings:
                self.connection.sim_mute_until = until
        self.server._changed_sessions()

    def unstall(self) -> None:
        with self._write_lock:
            self.stalled_until = None
            self.connection.sim_mute_until = 0.0
        self.server._changed_sessions()

    def request_reconnect(self, grace: float, frame: Frame | None) -> None:
        if frame is not None:
            self.send(frame)
        self.close_at = time.monotonic() + max(0.0, float(grace))

    def _mark_closed(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


# ---------------------------------------------------------------------------------------------
# Faults and scripts

@dataclass
class WsFault:
    kind: str
    exchange: str
    at_trade: int | None
    times: int
    pair: str | None
    params: dict[str, Any]
    fired_on: set[int] = field(default_factory=set)   # session serials: once per connection

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "exchange": self.exchange, "at_trade": self.at_trade,
                "times": self.times, "pair": self.pair, **self.params}


def make_ws_fault(kind: str, exchange: str = "bitstamp", at_trade: int | None = None,
                  times: int = 1, pair: str | None = None, **params: Any) -> WsFault:
    if kind not in WS_FAULT_DEFAULTS:
        raise ValueError(f"unknown websocket fault kind {kind!r}; known: {', '.join(WS_FAULT_KINDS)}")
    unknown = set(params) - set(WS_FAULT_DEFAULTS[kind])
    if unknown:
        allowed = ", ".join(["exchange", "at_trade", "times", "pair", *WS_FAULT_DEFAULTS[kind]])
        raise ValueError(f"websocket fault {kind!r} takes no {', '.join(sorted(unknown))} "
                         f"(takes: {allowed})")
    if int(times) < 1:
        raise ValueError("times must be at least 1")
    if at_trade is not None and int(at_trade) < 1:
        raise ValueError("at_trade counts scripted trades from 1")
    merged = {**WS_FAULT_DEFAULTS[kind], **params}
    if kind == "stall":
        if merged["seconds"] is not None and float(merged["seconds"]) < 0:
            raise ValueError("seconds must not be negative")
        merged["answer_pings"] = _as_bool(merged["answer_pings"])
    elif kind == "request_reconnect":
        merged["grace"] = float(merged["grace"])
        if merged["grace"] < 0:
            raise ValueError("grace must not be negative")
    elif kind == "garbage":
        merged["count"] = int(merged["count"])
        if merged["count"] < 1:
            raise ValueError("count must be at least 1")
    elif kind == "refuse":
        merged["seconds"] = float(merged["seconds"])
        merged["status"] = int(merged["status"] or 0)
        if merged["status"] and not 400 <= merged["status"] <= 599:
            raise ValueError("status must be an HTTP error status (400-599) or 0 (close)")
    return WsFault(kind, exchange, None if at_trade is None else int(at_trade), int(times),
                   pair, merged)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class _ScriptBatch:
    """Scripted frames for one (exchange, key), sent one at a time, each to exactly one
    connection. Calls made while a batch is still running extend it (numbering continues);
    a call after it is done starts a new batch counted from 1."""

    def __init__(self, exchange: str, key: str, channel: str) -> None:
        self.exchange = exchange
        self.key = key
        self.channel = channel
        self.pending: deque[tuple[int, Callable[[], Frame]]] = deque()
        self.total = 0
        self.sent = 0
        self.interval = 0.0
        self.thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return not self.pending


# ---------------------------------------------------------------------------------------------
# The server

class WsServer:
    """The websocket server for the given exchanges, on its own port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, exchanges: Sequence[Any] = (),
                 log: Callable[[str], None] | None = None, open_timeout: float = 5.0,
                 close_timeout: float = 1.0) -> None:
        self.host = host
        self.requested_port = port
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self._log_line = log
        self._exchanges: dict[str, Any] = {}
        routes: list[tuple[str, WsRoute, Any]] = []
        for exchange in exchanges:
            if exchange.name in self._exchanges:
                raise ValueError(f"two websocket exchanges named {exchange.name!r}")
            self._exchanges[exchange.name] = exchange
            routes += [(_normalize_prefix(r.prefix), r, exchange) for r in exchange.ws_routes()]
        prefixes = [prefix for prefix, _, _ in routes]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"websocket route prefixes must be unique: {prefixes}")
        self._declared_routes = routes                                   # for url_for
        self._routes = sorted(routes, key=lambda item: -len(item[0]))  # longest prefix first
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._sessions: list[WsSession] = []
        self._session_serial = 0
        self._subscription_serial = 0
        self._faults: list[WsFault] = []
        self._refusals: dict[str, tuple[float, int]] = {}
        self._counts: dict[str, Counter[str]] = {
            "connections": Counter(), "frames": Counter(), "refused": Counter(),
            "discarded": Counter(), "faults": Counter()}
        self._scripts: dict[tuple[str, str], _ScriptBatch] = {}
        self._stop_event = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> "WsServer":
        if self._server is not None:
            raise RuntimeError("websocket server already started")
        self._stop_event.clear()
        self._server = serve(
            self._handle, self.host, self.requested_port,
            process_request=self._process_request,
            create_connection=_SimConnection,
            compression=None,            # frames as plain as the recorded ones
            ping_interval=None,          # no keepalive pings of our own; clients' pings are
                                         # answered by the library (except in a stall with
                                         # answer_pings=False, or after a drop)
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
            server_header="exchange-sim",
            logger=_LOGGER,
        )
        # Daemon: threads started from it (one per connection) are daemons too.
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-ws-server",
                                        daemon=True)
        self._thread.start()
        for exchange in self._exchanges.values():
            hook = getattr(exchange, "start", None)
            if hook is not None:
                hook(self)
        with self._lock:
            for batch in self._scripts.values():   # scripts a stop() interrupted go on
                self._ensure_script_thread(batch)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        deadline = time.monotonic() + timeout
        self._stop_event.set()
        for exchange in self._exchanges.values():
            hook = getattr(exchange, "stop", None)
            if hook is not None:
                hook()
        with self._lock:
            self._changed.notify_all()
            scripts = [b.thread for b in self._scripts.values() if b.thread is not None]
            sessions = list(self._sessions)
        for thread in scripts:
            thread.join(max(0.0, deadline - time.monotonic()))
        for session in sessions:
            # Stalled connections get their close frame; dropped ones are done with.
            session.connection.sim_mute_until = 0.0
            session.stalled_until = None
            if session.dropped:
                session.connection.close_socket()
        # shutdown() closes open connections (1001) and waits for their handler threads.
        closer = threading.Thread(target=server.shutdown, name="sim-ws-shutdown", daemon=True)
        closer.start()
        closer.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        with self._lock:
            self._refusals.clear()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("websocket server not started")
        return self._server.socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def url_for(self, exchange: str) -> str:
        """The URL of the exchange's first route, e.g. ws://127.0.0.1:PORT/bitstamp."""
        self.exchange(exchange)   # KeyError for an unknown exchange
        prefix = next(p for p, _, e in self._declared_routes if e.name == exchange)
        return self.url + prefix

    def exchange(self, name: str) -> Any:
        try:
            return self._exchanges[name]
        except KeyError:
            raise KeyError(f"no websocket exchange {name!r}; known: {', '.join(self._exchanges)}") from None

    @property
    def exchanges(self) -> list[Any]:
        return list(self._exchanges.values())

    def log(self, line: str) -> None:
        if self._log_line is not None:
            self._log_line(line)

    # -- handshake and connection handling -----------------------------------------------------

    def _match(self, path: str) -> tuple[str, WsRoute, Any] | None:
        for prefix, route, exchange in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, route, exchange
        return None

    def _process_request(self, connection: _SimConnection, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        found = self._match(path)
        if found is None:
            self.log(f"WS {request.path} 404")
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        _, route, exchange = found
        status = self._refusal(exchange.name)
        if status is not None:
            self._count("refused", exchange.name)
            self.log(f"WS {request.path} {status or 'closed'} fault=refuse")
            if status:
                try:
                    phrase = http.HTTPStatus(status).phrase
                except ValueError:
                    phrase = "Error"
                return connection.respond(status, f"{status} {phrase}\n")
            connection.close_socket()   # no answer at all; this response is never written
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "")
        connection.sim_target = (exchange, route, path)
        return None

    def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _SimConnection) and connection.sim_target is not None
        exchange, route, path = connection.sim_target
        with self._lock:
            self._session_serial += 1
            serial = self._session_serial
        threading.current_thread().name = f"sim-ws-conn-{serial}"
        session = WsSession(self, exchange, route, path, connection, serial)
        with self._lock:
            self._sessions.append(session)
            self._counts["connections"][exchange.name] += 1
        session._writer.start()
        self.log(f"WS {path} #{serial} open")
        try:
            hook = getattr(exchange, "on_open", None)
            if hook is not None:
                self._call(hook, session)
            self._read_loop(session)
        finally:
            session._mark_closed()
            with self._lock:
                self._sessions.remove(session)
                self._changed.notify_all()
            hook = getattr(exchange, "on_close", None)
            if hook is not None:
                self._call(hook, session)
            session._writer.join(2.0)
            self.log(f"WS {path} #{serial} closed after {session.frames_sent} frames"
                     + (" (dropped)" if session.dropped else ""))

    def _read_loop(self, session: WsSession) -> None:
        connection = session.connection
        while True:
            try:
                message: Frame | None = connection.recv(timeout=POLL)
            except TimeoutError:
                message = None
            except ConnectionClosed:
                return
            now = time.monotonic()
            if session.dropped:
                if now - session.dropped_at > DROP_LINGER:
                    connection.close_socket()   # the client never closed its end
                    return
                continue                         # what the client says now goes nowhere
            if session.close_at is not None and now >= session.close_at and not session.closing:
                session.closing = True           # no more scripted frames; one close only
                self._changed_sessions()
                connection.close(1000, "reconnect requested")
                continue
            if session.stalled_until is not None and not session.stalled:
                session.unstall()                # the stall ran its `seconds`
            if message is None or session.stalled:
                continue                         # a stalled server reads nothing either
            self._call(session.exchange.on_message, session, message)

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Exchange code must not kill a connection: a simulator bug shows on stderr."""
        try:
            return function(*args)
        except Exception:
            traceback.print_exc()
            return None

    # -- sessions and channels ------------------------------------------------------------------

    def sessions(self, exchange: str | None = None) -> list[WsSession]:
        with self._lock:
            return [s for s in self._sessions
                    if s.alive and (exchange is None or s.exchange_name == exchange)]

    def session_channels(self, session: WsSession) -> list[str]:
        with self._lock:
            return list(session.subscriptions)

    def channels(self, exchange: str) -> set[str]:
        """Every channel some live connection of the exchange is subscribed to."""
        with self._lock:
            return {c for s in self._sessions if s.alive and s.exchange_name == exchange
                    for c in s.subscriptions}

    def subscribers(self, exchange: str, channel: str) -> list[WsSession]:
        with self._lock:
            return [s for s in self._sessions if s.alive and s.exchange_name == exchange
                    and channel in s.subscriptions]

    def broadcast(self, exchange: str, channel: str, frame: Frame) -> int:
        """Send a frame to every connection subscribed to the channel; returns how many."""
        return sum(s.send(frame) for s in self.subscribers(exchange, channel))

    def _subscribe(self, session: WsSession, channel: str) -> None:
        with self._lock:
            first = not session.ever_subscribed
            session.ever_subscribed = True
            self._subscription_serial += 1
            session.subscriptions[channel] = self._subscription_serial
            self._changed.notify_all()
            due = self._take_pending_faults(session) if first else []
        if due:
            session.flush()    # the ack reaches the client before the fault strikes
            for fault in due:
                self._fire(fault, session)

    def _unsubscribe(self, session: WsSession, channel: str) -> None:
        with self._lock:
            session.subscriptions.pop(channel, None)
            self._changed.notify_all()

    def _changed_sessions(self) -> None:
        with self._lock:
            self._changed.notify_all()

    # -- faults -----------------------------------------------------------------------------------

    def set_fault(self, kind: str, exchange: str = "bitstamp", at_trade: int | None = None,
                  times: int = 1, pair: str | None = None, **params: Any) -> dict[str, Any]:
        """Inject a websocket fault. With `at_trade=k` it fires on the connection that is about
        to send scripted trade number k (of the current script batch of any pair of that
        exchange, or only of `pair`), before that trade is sent; `times` > 1 fires it again on
        the next connections about to send trade k. Without `at_trade` it fires at once on
        every open connection of the exchange (one of the `times`); the remaining times, or
        all of them if no connection is open, fire on the next connections as they open, each
        right after its first subscription has been acknowledged. "refuse" is about new
        connections: it starts refusing at once (or at trade k) for `seconds`.
        Returns the fault as stored."""
        self.exchange(exchange)   # KeyError for an unknown exchange
        fault = make_ws_fault(kind, exchange, at_trade, times, pair, **params)
        described = fault.to_dict()
        if fault.at_trade is not None:
            with self._lock:
                self._faults.append(fault)
            return described
        if kind == "refuse":
            self._fire(fault, None)
            return described
        with self._lock:
            targets = [s for s in self._sessions if s.alive and s.exchange_name == exchange]
            if targets:
                fault.times -= 1
                fault.fired_on.update(s.serial for s in targets)
            if fault.times > 0:
                self._faults.append(fault)
        for session in targets:
            self._fire(fault, session)
        return described

    def clear_faults(self, exchange: str | None = None) -> int:
        """Forget faults not fired yet, end refusals and stalls in progress (of one exchange,
        or all). Returns how many stored faults were forgotten."""
        with self._lock:
            keep = [f for f in self._faults if exchange is not None and f.exchange != exchange]
            cleared = len(self._faults) - len(keep)
            self._faults = keep
            for name in list(self._refusals):
                if exchange is None or name == exchange:
                    del self._refusals[name]
            stalled = [s for s in self._sessions if s.stalled_until is not None
                       and (exchange is None or s.exchange_name == exchange)]
        for session in stalled:
            session.unstall()
        return cleared

    def list_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def _take_pending_faults(self, session: WsSession) -> list[WsFault]:
        return self._take_faults(session, lambda fault: fault.at_trade is None
                                 and fault.exchange == session.exchange_name)

    def _take_trade_faults(self, batch: _ScriptBatch, number: int, target: WsSession
                           ) -> list[WsFault]:
        return self._take_faults(target, lambda fault: fault.at_trade == number
                                 and fault.exchange == batch.exchange
                                 and fault.pair in (None, batch.key))

    def _take_faults(self, session: WsSession, applies) -> list[WsFault]:
        """The faults due on `session` now: each fires at most once per connection."""
        due = []
        for fault in self._faults:
            if applies(fault) and fault.times > 0 and session.serial not in fault.fired_on:
                fault.times -= 1
                fault.fired_on.add(session.serial)
                due.append(fault)
        if due:
            self._faults = [f for f in self._faults if f.times > 0]
        return due

    def _refusal(self, exchange: str) -> int | None:
        """The status to refuse a new connection with (0: close it), or None to accept."""
        with self._lock:
            refusal = self._refusals.get(exchange)
            if refusal is None:
                return None
            until, status = refusal
            if time.monotonic() >= until:
                del self._refusals[exchange]
                return None
            return status

    def _fire(self, fault: WsFault, session: WsSession | None) -> None:
        kind, params = fault.kind, fault.params
        self._count("faults", f"{fault.exchange}:{kind}")
        if kind == "refuse":
            with self._lock:
                self._refusals[fault.exchange] = (time.monotonic() + params["seconds"],
                                                  params["status"])
            self.log(f"WS {fault.exchange} refusing connections for {params['seconds']} s")
            return
        assert session is not None
        self.log(f"WS {session.path} #{session.serial} fault={kind}")
        if kind == "drop":
            session.drop()
        elif kind == "stall":
            session.stall(params["seconds"], params["answer_pings"])
        elif kind == "request_reconnect":
            hook = getattr(session.exchange, "reconnect_frame", None)
            frame = self._call(hook, session) if hook is not None else None
            session.request_reconnect(params["grace"], frame)
        elif kind == "garbage":
            hook = getattr(session.exchange, "garbage_frames", None)
            frames = self._call(hook, session, params["count"]) if hook is not None else None
            for frame in frames or generic_garbage(params["count"]):
                session.send(frame)

    # -- scripts ----------------------------------------------------------------------------------

    def run_script(self, exchange: str, key: str, channel: str,
                   items: Iterable[tuple[int, Callable[[], Frame]]], interval: float) -> None:
        """Send each item's frame (built when it is sent) on `channel`, one item every
        `interval` seconds, each to exactly one connection: the usable one that subscribed to
        the channel most recently. An item counts as sent once the frame was written to that
        connection; if it could not be (dropped, stalled, closed), it waits for the next
        subscribed connection. Faults with at_trade fire here."""
        items = list(items)
        with self._lock:
            if self._server is None or self.stopping:
                raise RuntimeError("websocket server not started")
            batch = self._scripts.get((exchange, key))
            if batch is None or batch.done:
                batch = self._scripts[(exchange, key)] = _ScriptBatch(exchange, key, channel)
            elif batch.channel != channel:
                raise ValueError(f"a script on {batch.channel} is still running for {key!r}")
            batch.pending.extend(items)
            batch.total += len(items)
            batch.interval = max(0.0, float(interval))
            self._ensure_script_thread(batch)

    def _ensure_script_thread(self, batch: _ScriptBatch) -> None:
        """(lock held)"""
        if batch.pending and batch.thread is None:
            batch.thread = threading.Thread(target=self._run_script, args=(batch,),
                                            name=f"sim-ws-script-{batch.exchange}-{batch.key}",
                                            daemon=True)
            batch.thread.start()

    def script_active(self, exchange: str, key: str) -> bool:
        with self._lock:
            batch = self._scripts.get((exchange, key))
            return batch is not None and not batch.done

    def script_done(self, exchange: str, key: str) -> bool:
        return not self.script_active(exchange, key)

    def script_sent(self, exchange: str, key: str) -> int:
        with self._lock:
            batch = self._scripts.get((exchange, key))
            return 0 if batch is None else batch.sent

    def _script_target(self, batch: _ScriptBatch) -> WsSession | None:
        best, best_serial = None, -1
        for session in self._sessions:
            if session.exchange_name != batch.exchange or not session.usable:
                continue
            serial = session.subscriptions.get(batch.channel)
            if serial is not None and serial > best_serial:
                best, best_serial = session, serial
        return best

    def _run_script(self, batch: _ScriptBatch) -> None:
        try:
            while True:
                with self._lock:
                    if self.stopping or not batch.pending:
                        return
                    number = batch.sent + 1
                    _, build = batch.pending[0]
                    target = self._script_target(batch)
                    if target is None:
                        self._changed.wait(0.05)
                        continue
                    faults = self._take_trade_faults(batch, number, target)
                moved = False
                for fault in faults:
                    self._fire(fault, target)
                    moved = moved or fault.kind in _MOVING_KINDS
                if moved:
                    continue   # trade `number` goes to the next connection
                sent = target.send_tracked(build())
                while not sent.event.wait(POLL):
                    if self.stopping:
                        return
                if not sent.ok:
                    self._stop_event.wait(0.01)
                    continue
                with self._lock:
                    batch.pending.popleft()
                    batch.sent += 1
                    more = bool(batch.pending)
                    self._changed.notify_all()
                if more and batch.interval:
                    self._stop_event.wait(batch.interval)
        except Exception:
            traceback.print_exc()
        finally:
            with self._lock:
                batch.thread = None
                self._changed.notify_all()

    # -- counters ---------------------------------------------------------------------------------

    def _count(self, what: str, key: str) -> None:
        with self._lock:
            self._counts[what][key] += 1

    def connection_count(self, exchange: str | None = None) -> int:
        """Handshakes accepted in total."""
        return self._total("connections", exchange)

    def frames_sent(self, exchange: str | None = None) -> int:
        """Text and binary frames written (acks, heartbeats, data, garbage alike)."""
        return self._total("frames", exchange)

    def refused_count(self, exchange: str | None = None) -> int:
        return self._total("refused", exchange)

    def _total(self, what: str, exchange: str | None) -> int:
        with self._lock:
            counter = self._counts[what]
            return sum(counter.values()) if exchange is None else counter.get(exchange, 0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            open_now = Counter(s.exchange_name for s in self._sessions if s.alive)
            return {"open": dict(open_now), **{k: dict(v) for k, v in self._counts.items()},
                    "scripts": {f"{b.exchange}:{b.key}": {"sent": b.sent, "total": b.total}
                                for b in self._scripts.values()}}

    def reset_counts(self) -> None:
        with self._lock:
            for counter in self._counts.values():
                counter.clear()
