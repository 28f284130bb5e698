"""What the simulator's websocket exchanges share: the feed thread that keeps subscribed pairs'
books and trades moving (start/stop/wake, the wait between rounds), the bookkeeping of which
pairs are wanted, scripted and blasted trades, and unique increasing trade ids.

The leading underscore keeps proj.sim's module discovery from taking this for an exchange.
"""
from __future__ import annotations

import functools
import json
import math
import random
import threading
import time
from typing import Any, Callable

from .bitstamp import SPREAD_FRACTION
from .wsserver import MAX_QUEUE, Frame, WsServer, WsSession


def dumps(document: Any) -> str:
    """Compact JSON (no spaces), as the exchanges' websocket frames are."""
    return json.dumps(document, separators=(",", ":"))


class Ids:
    """Unique increasing integers: microseconds since `epoch_us` (plus `base`), or one more
    than the last one handed out when the clock has not moved on."""

    def __init__(self, epoch_us: int, base: int = 0) -> None:
        self.epoch_us = epoch_us
        self.base = base
        self.last = 0
        self.lock = threading.Lock()

    def take(self, count: int, now: float) -> list[int]:
        with self.lock:
            first = max(self.last + 1, self.base + math.floor(now * 1_000_000) - self.epoch_us)
            self.last = first + count - 1
            return list(range(first, first + count))


NOT_JSON = object()   # read_client_json's answer for a frame that is no JSON at all


def read_client_json(message: Frame) -> Any:
    """What a client sent, decoded, or NOT_JSON (bytes that are not UTF-8, text that is not
    JSON): each exchange answers that in its own words."""
    try:
        return json.loads(message.decode() if isinstance(message, bytes) else message)
    except ValueError:   # UnicodeDecodeError and JSONDecodeError alike
        return NOT_JSON


def paced_send(session: WsSession, frame: Frame,
               send: Callable[[WsSession, Frame], Any] | None = None) -> None:
    """Send `frame` once the connection's writer queue (bounded) is below half full."""
    queued = getattr(session, "queued", None)
    while queued is not None and queued() >= MAX_QUEUE // 2 and session.alive:
        time.sleep(0.001)   # the writer's queue is bounded: keep it fed, not full
    if send is None:
        session.send(frame)
    else:
        send(session, frame)


class LiveFeed:
    """Base of the websocket exchanges: a feed thread that, round after round, looks at what is
    subscribed (`_wanted`), sends what is due (`_feed`, returning when to look again) and then
    sleeps until then or until wake(). Subclasses set `name`, `clock`, `trade_interval` (and
    `book_interval` where they have books), call `_init_feed` from __init__, and implement
    `_split_channel`, `_feed` and `_scripted_trade`."""

    name = ""
    clock: Callable[[], float]
    trade_interval: float | None
    book_interval: float | None

    def _init_feed(self, seed: int | None, lock: Any = None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock() if lock is None else lock   # live pairs, books, rng
        self._live: dict[str, Any] = {}
        self._kick = threading.Condition()
        self._kicked = False
        self._halt = threading.Event()
        self._server: WsServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, server: WsServer) -> None:
        self._server = server
        self._halt.clear()
        with self._lock:
            self._live.clear()
        self._thread = threading.Thread(target=self._feed_loop, name=f"sim-ws-{self.name}-feed",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def wake(self) -> None:
        """Make the feed look at subscriptions and intervals again now."""
        with self._kick:
            self._kicked = True
            self._kick.notify_all()

    def on_close(self, session: WsSession) -> None:
        self.wake()

    # -- the feed -------------------------------------------------------------------------------

    def _feed_loop(self) -> None:
        while not self._halt.is_set():
            server = self._server
            assert server is not None
            wake_at = self._feed(server, self._wanted(server))
            with self._kick:
                if not self._kicked:
                    self._kick.wait(max(0.0, wake_at - time.monotonic()))
                self._kicked = False

    def _split_channel(self, channel: str) -> tuple[str, Any] | None:
        """A subscribed channel -> (pair, what of it is wanted); None if not a known pair's."""
        raise NotImplementedError

    def _feed(self, server: WsServer, wanted: dict[str, set[Any]]) -> float:
        """One round: send what is due; returns the monotonic time to look again."""
        raise NotImplementedError

    def _wanted(self, server: WsServer) -> dict[str, set[Any]]:
        wanted: dict[str, set[Any]] = {}
        for channel in server.channels(self.name):
            split = self._split_channel(channel)
            if split is not None:
                wanted.setdefault(split[0], set()).add(split[1])
        return wanted

    def _drop_unwanted(self, wanted: dict[str, set[Any]]) -> None:
        """Nobody listening: start afresh (from REST) next time (lock held)."""
        for pair in [p for p in self._live if p not in wanted]:
            del self._live[pair]

    def _next_delay(self, interval: float | None) -> float:
        return self._rng.expovariate(1 / interval) if interval else math.inf

    def _next_trade_delay(self) -> float:
        return self._next_delay(self.trade_interval)

    def _book_delay(self) -> float:
        return self.book_interval or math.inf

    def _hit_touch(self, market: Any, book: Any, now: float, spread: bool = True,
                   always_take: bool = False) -> tuple[bool, int, int]:
        """A lively trade at the touch (lock held): (taker buys, price ticks, amount units). A
        buy hits the best ask, a sell the best bid, taking liquidity from that level (when the
        book changes, or `always_take`). With that side empty: half the spread (`spread`) or
        one tick away from the mid."""
        rng = self._rng
        buy = rng.random() < 0.5
        level = book.best_ask() if buy else book.best_bid()
        if level is None:
            mid = market.mid_ticks(now)
            half = max(1.0, mid * SPREAD_FRACTION) / 2 if spread else 1
            price, available = max(1, round(mid + (half if buy else -half))), None
        else:
            price, available = level, (book.asks if buy else book.bids)[level]
        amount = max(1, round(market.spec.typical_amount * math.exp(3 * (rng.random() - 0.5))
                              * market.amount_scale))
        if available is not None:
            amount = min(amount, available)
            if always_take or self.book_interval:   # without book changes nothing refills it
                (book.set_ask if buy else book.set_bid)(price, available - amount)
        return buy, price, amount

    # -- scripted trades ------------------------------------------------------------------------

    def _ids_for(self, pair: str) -> Ids:
        return self._trade_ids   # type: ignore[attr-defined]

    def _server_started(self) -> WsServer:
        if self._server is None:
            raise RuntimeError("websocket server not started")
        return self._server

    def _take_ids(self, pair: str, count: int) -> list[int]:
        return self._ids_for(pair).take(int(count), self.clock()) if count else []

    def _script(self, pair: str, count: int, interval: float, known: Any, what: str,
                channel: str) -> list[int]:
        """Emit exactly `count` trades of `pair` on `channel` (see WsServer.run_script), each
        built by _scripted_trade(pair, id). Returns their ids, in order."""
        if pair not in known:
            raise ValueError(f"unknown {what} {pair!r}; known: {', '.join(known)}")
        if int(count) < 0:
            raise ValueError("count must not be negative")
        server = self._server_started()
        ids = self._take_ids(pair, count)
        server.run_script(self.name, pair, channel,
                          [(i, functools.partial(self._scripted_trade, pair, i)) for i in ids],
                          interval)
        return ids

    def _scripted_trade(self, pair: str, trade_id: int) -> Frame:
        raise NotImplementedError
