"""One exchange websocket held open: subscribe, heartbeats, silence, reconnect forever.

The exchange module says what its frames are (`ws_classify`) and what to send; this module
only keeps the connection alive and hands data frames, as received text stamped with their
receive time, to a batcher. Parsing happens later, once, in the worker.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field

import websocket

from proj import settings
from proj.exchanges import get_exchange

from .batching import FrameBatcher

log = logging.getLogger("collector.streamers")
DRAIN_SECONDS = 5.0   # the longest an old connection is read after its replacement is up


class ConnectionLost(Exception):
    """The connection is gone or no longer worth keeping (closed, silent)."""


@dataclass
class StreamStats:
    started: float = field(default_factory=time.time)
    messages_received: int = 0     # data frames received
    messages_processed: int = 0    # data frames handed to the workers
    errors: int = 0                # error frames, unreadable frames, failed sends
    reconnect_attempts: int = 0    # connections lost or replaced, in all
    connections: int = 0
    silences: int = 0              # connections replaced for silence
    reconnect_requests: int = 0    # exchange-requested reconnects
    last_message_time: float | None = None
    last_heartbeat: float | None = None
    connected_since: float | None = None
    last_error: str | None = None

    def snapshot(self) -> dict:
        now = time.time()
        data = asdict(self)
        data["updated"] = now
        data["uptime_seconds"] = round(now - self.started, 3)
        data["connection_uptime"] = round(now - self.connected_since, 3) if self.connected_since else 0.0
        return data


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(cap, base * 2 ** failures))


class Streamer:
    """Holds one connection for `symbols` × `types` of one exchange and feeds `sink(frames)`."""

    def __init__(self, exchange: str, symbols: list, types: list, sink, *, name: str | None = None,
                 ws_url: str | None = None, max_silence: float | None = None,
                 batch_size: int = 100, batch_ms: float = 10, on_stats=None,
                 stats_interval: float = 1.0):
        self.adapter = get_exchange(exchange)
        self.exchange = exchange
        self.name = name or exchange
        self.symbols, self.types = list(symbols), list(types)
        self.url = self.adapter.ws_connect_url(ws_url or settings.ws_url(exchange, self.adapter.ws_url),
                                               self.symbols, self.types)
        self.channels = self.adapter.ws_channels(self.symbols, self.types)
        # one limit for all channels, or one per type ({"trades": 120, "order_book": 30}):
        # a quiet pair's trades may pause for minutes while its book changes every second
        default = float(settings.max_silence())
        if isinstance(max_silence, dict):
            self.silence_limits = {channel: float(max_silence.get(kind, default))
                                   for kind in self.types
                                   for channel in self.adapter.ws_channels(self.symbols, [kind])}
        else:
            self.silence_limits = {channel: float(max_silence or default) for channel in self.channels}
        self.max_silence = max(self.silence_limits.values(), default=default)
        self.stats = StreamStats()
        self.batcher = FrameBatcher(sink, batch_size, batch_ms)
        self.on_stats = on_stats
        self.stats_interval = stats_interval
        self._next_stats = 0.0
        self._stopping = threading.Event()
        self._last_data: dict[str, float] = {}
        self._had_data = False

    def stop(self) -> None:
        self._stopping.set()

    def run(self, seconds: float | None = None) -> None:
        """Until stop() (or `seconds`): connect, pump, and on any loss reconnect with backoff."""
        ends = time.monotonic() + seconds if seconds else None
        failures, ws = 0, None
        while not self._stopping.is_set() and not (ends and time.monotonic() >= ends):
            try:
                if ws is None:
                    ws = self._connect()
                ws = self._pump(ws, ends)
            except (websocket.WebSocketException, OSError, ConnectionLost) as exc:
                _close(ws)
                ws = None
                self.stats.reconnect_attempts += 1
                self.stats.connected_since = None
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self._had_data:   # it worked for a while: start the backoff afresh
                    failures, self._had_data = 0, False
                delay = backoff_delay(failures, settings.reconnect_delay(), settings.reconnect_delay_cap())
                failures += 1
                log.warning("collector=%s connection lost (%s); reconnect attempt %d in %.2fs",
                            self.name, self.stats.last_error, self.stats.reconnect_attempts, delay)
                self._report(force=True)
                self._stopping.wait(delay)
        _close(ws)
        self.batcher.drain()
        self.stats.messages_processed = self.batcher.sent
        self._report(force=True)

    # ---- one connection -------------------------------------------------------------------
    def _connect(self):
        ws = websocket.create_connection(self.url, timeout=10, skip_utf8_validation=True)
        for message in self.adapter.ws_subscribe_messages(self.symbols, self.types):
            ws.send(message)
        now = time.monotonic()
        self._last_data = {channel: now for channel in self.channels}  # silence counts from here
        self._had_data = False
        self.stats.connections += 1
        self.stats.connected_since = time.time()
        log.info("collector=%s connected to %s, subscribing %s", self.name, self.url,
                 ", ".join(self.channels))
        return ws

    def _pump(self, ws, ends: float | None):
        """Receive until the connection is lost (raises) or replaced (returns the new one)."""
        interval = self.adapter.ws_heartbeat_interval
        next_heartbeat = time.monotonic() + interval if interval else float("inf")
        while not self._stopping.is_set():
            now = time.monotonic()
            if ends and now >= ends:
                return ws
            silence_deadline = min((last + self.silence_limits.get(ch, self.max_silence)
                                    for ch, last in self._last_data.items()), default=now + 1)
            wait = min(self.batcher.seconds_to_flush(now), next_heartbeat - now,
                       silence_deadline - now, 0.5)
            ws.settimeout(max(wait, 0.001))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                opcode, data = None, None
            now = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionLost("closed by the exchange")
            if opcode is not None and self._on_frame(opcode, data, now) == "reconnect":
                return self._replace(ws)
            self.batcher.flush_if_due(now)
            if now >= next_heartbeat:
                ws.send(self.adapter.ws_heartbeat_message())
                next_heartbeat = now + interval
            silent = [ch for ch, last in self._last_data.items()
                      if now - last > self.silence_limits.get(ch, self.max_silence)]
            if silent:
                self.stats.silences += 1
                raise ConnectionLost(f"no data within the silence limit on {', '.join(silent)}")
            self._report()
        return ws

    def _on_frame(self, opcode, data: bytes, now: float) -> str:
        received = time.time_ns() // 1_000_000
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return self._unexpected(f"binary frame of {len(data)} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._unexpected("frame is not UTF-8")
        what, channel = self.adapter.ws_classify(text)
        if what == "data":
            self.stats.messages_received += 1
            self._had_data = True
            self.stats.last_message_time = time.time()
            if channel in self._last_data:
                self._last_data[channel] = now
            self.batcher.add(received, text)
            self.stats.messages_processed = self.batcher.sent
        elif what == "alive":   # the channel's incremental feed: not records, but not silence
            if channel in self._last_data:
                self._last_data[channel] = now
        elif what == "heartbeat":
            self.stats.last_heartbeat = time.time()   # alive, but not data: silence still counts
        elif what == "ack":
            log.info("collector=%s subscribed %s", self.name, channel)
        elif what == "error":
            self.stats.errors += 1
            self.stats.last_error = text[:300]
            log.warning("collector=%s exchange error frame: %.300s", self.name, text)
        elif what == "reconnect":
            self.stats.reconnect_requests += 1
            log.info("collector=%s exchange asks for a new connection", self.name)
        else:
            return self._unexpected(text[:200])
        return what

    def _unexpected(self, what: str) -> str:
        self.stats.errors += 1
        self.stats.last_error = f"unexpected frame: {what}"
        log.warning("collector=%s unexpected frame (skipped): %s", self.name, what)
        return "unknown"

    def _replace(self, old):
        """Make before break: subscribe a new connection, then read what the old one still
        holds and close it, so that nothing sent in between is missed."""
        try:
            new = self._connect()
            self._await_acks(new)
        except (websocket.WebSocketException, OSError, ConnectionLost) as exc:
            log.warning("collector=%s replacement connection failed (%s); keeping the old one",
                        self.name, exc)
            return old
        self.stats.reconnect_attempts += 1
        # The exchange keeps the old connection for a grace period and may send on it until
        # the new subscription is in place: read it until it closes, goes quiet for a second,
        # or DRAIN_SECONDS pass (the new connection buffers meanwhile).
        ends = time.monotonic() + DRAIN_SECONDS
        old.settimeout(1.0)
        try:
            while time.monotonic() < ends:
                opcode, data = old.recv_data()
                if opcode in (None, websocket.ABNF.OPCODE_CLOSE):
                    break
                self._on_frame(opcode, data, time.monotonic())
        except (websocket.WebSocketException, OSError):
            pass   # quiet or closed: drained
        _close(old)
        return new

    def _await_acks(self, ws, seconds: float = 5.0) -> None:
        """Read the new connection until every channel is acknowledged (or `seconds` pass):
        only then may the old one go. Data arriving meanwhile is handled as usual."""
        waiting, ends = set(self.channels), time.monotonic() + seconds
        while waiting and time.monotonic() < ends:
            ws.settimeout(max(0.01, ends - time.monotonic()))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionLost("replacement closed by the exchange")
            what, channel = ("", "")
            if opcode == websocket.ABNF.OPCODE_TEXT:
                what, channel = self.adapter.ws_classify(data.decode("utf-8", "replace"))
            if what == "ack":
                waiting.discard(channel)
            self._on_frame(opcode, data, time.monotonic())

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_stats and (force or now >= self._next_stats):
            self._next_stats = now + self.stats_interval
            self.stats.messages_processed = self.batcher.sent
            snapshot = self.stats.snapshot()
            # a broker that refuses frames is an error the status must show
            snapshot["send_errors"] = self.batcher.send_errors
            snapshot["frames_dropped"] = self.batcher.dropped
            snapshot["frames_held"] = len(self.batcher.frames)
            snapshot["errors"] += self.batcher.send_errors
            snapshot["last_data_by_channel"] = {
                ch: round(time.time() - (now - last), 3) for ch, last in self._last_data.items()}
            try:
                self.on_stats(snapshot)
            except Exception as exc:   # status is best effort; the data path must go on
                log.warning("collector=%s status not written: %s", self.name, exc)


def _close(ws) -> None:
    if ws is not None:
        try:
            ws.close(timeout=1)
        except Exception:
            pass
