"""Bitstamp's websocket API v2 (wss://ws.bitstamp.net), as served by the simulator at /bitstamp.

Shapes come from Bitstamp's documentation (https://www.bitstamp.net/websocket/v2/) and recorded
frames (fixtures/bitstamp/ws_*.json, fixtures/bitstamp/sequences/*.jsonl); nothing is shared with
the collector's parsers.

    -> {"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}
    <- {"event": "bts:subscription_succeeded", "channel": "live_trades_btcusd", "data": {}}
    <- {"data": {"id": ..., ...}, "channel": "live_trades_btcusd", "event": "trade"}
    -> {"event": "bts:heartbeat"}
    <- {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}

Channels: live_trades_{pair} (event "trade"), order_book_{pair} (event "data": the top 100
levels of each side after every change) and diff_order_book_{pair} (event "data": the levels
that changed, amount "0.00000000" = level gone). Anything else is answered with bts:error.

Lively data: while a pair has subscribers, it keeps a live book, started from the REST side's
book of that second (bitstamp.Market.book) and then changed a few levels at a time while
following the same per-pair price walk (bitstamp.Market.mid_ticks), so websocket and REST
prices agree. Trades arrive at random intervals (exponential, mean `trade_interval`), buys at
the best ask and sells at the best bid, taking liquidity from that level. Trade ids are
exchange-wide, unique and increasing: microseconds since bitstamp.TID_EPOCH, which keeps them
apart from (always above) the REST tids.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ._livefeed import NOT_JSON, Ids, LiveFeed, dumps, paced_send, read_client_json
from .bitstamp import (BOOK_DEPTH, LEVEL_GAP_FRACTION, MAX_PAIRS, PAIRS, SPREAD_FRACTION,
                       TID_EPOCH, Market, PairSpec)
from .wsserver import Frame, WsRoute, WsServer, WsSession

CHANNEL_KINDS = ("live_trades", "order_book", "diff_order_book")
BOOK_EXTRA = 30            # live levels kept beyond the 100 shown, so deletions keep it full
BOOK_CHURN_LEVELS = 12     # random changes happen among the best this many levels
ORDER_ID_BASE = 10 ** 15   # order ids: 16 digits, like the recorded ones
EPOCH_US = TID_EPOCH * 1_000_000


def error_frame(message: str) -> str:
    return dumps({"event": "bts:error", "channel": "", "data": {"code": None, "message": message}})


HEARTBEAT_FRAME = dumps({"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}})
RECONNECT_FRAME = dumps({"event": "bts:request_reconnect", "channel": "", "data": ""})
BAD_JSON = "Incorrect JSON format."
BAD_SUBSCRIPTION = "Bad subscription string."
BAD_EVENT = "Bad event."


def parse_channel(channel: Any) -> tuple[str, str] | None:
    """"diff_order_book_btcusd" -> ("diff_order_book", "btcusd"); None if not of that form."""
    if not isinstance(channel, str):
        return None
    for kind in sorted(CHANNEL_KINDS, key=len, reverse=True):
        if channel.startswith(kind + "_") and len(channel) > len(kind) + 1:
            return kind, channel[len(kind) + 1:]
    return None


# -------------------------------------------------------------------------------------------
# The live book of one pair

class LiveBook:
    """Bids and asks as {price ticks: amount units}; every change is remembered for the next
    diff. Invariant: every bid is below every ask."""

    def __init__(self, market: Market, now: float, depth: int = BOOK_DEPTH) -> None:
        self.market = market
        self.depth = depth
        start = market.book(now, depth + BOOK_EXTRA)
        self.bids: dict[int, int] = dict(start.bids)
        self.asks: dict[int, int] = dict(start.asks)
        self.changed_bids: dict[int, int] = {}
        self.changed_asks: dict[int, int] = {}

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None

    def set_bid(self, price: int, amount: int) -> None:
        self._set(self.bids, self.changed_bids, price, amount)

    def set_ask(self, price: int, amount: int) -> None:
        self._set(self.asks, self.changed_asks, price, amount)

    @staticmethod
    def _set(side: dict[int, int], changes: dict[int, int], price: int, amount: int) -> None:
        if amount > 0:
            side[price] = amount
        elif side.pop(price, None) is None:
            return   # deleting a level that is not there changes nothing
        changes[price] = max(0, amount)

    def _amount(self, rng: random.Random) -> int:
        spec = self.market.spec
        return max(1, round(spec.typical_amount * rng.lognormvariate(0, 1)
                            * self.market.amount_scale))

    def step(self, now: float, rng: random.Random) -> None:
        """One moment of market life: follow the price walk, change a few of the best levels,
        keep the depth."""
        mid = self.market.mid_ticks(now)
        gap = max(1, round(mid * LEVEL_GAP_FRACTION))
        half_spread = max(1, round(mid * SPREAD_FRACTION / 2))
        # Levels the walk has crossed were taken: bids below the mid, asks above it.
        for price in [p for p in self.bids if p >= mid]:
            self.set_bid(price, 0)
        for price in [p for p in self.asks if p <= mid]:
            self.set_ask(price, 0)
        # New orders close a spread the walk has widened.
        best_bid, best_ask = self.best_bid(), self.best_ask()
        if best_bid is None or best_bid < mid - 3 * gap:
            price = math.ceil(mid) - 1 - rng.randint(0, half_spread)
            if price > 0:
                self.set_bid(price, self._amount(rng))
        if best_ask is None or best_ask > mid + 3 * gap:
            self.set_ask(math.floor(mid) + 1 + rng.randint(0, half_spread), self._amount(rng))
        # A few orders placed, changed or cancelled near the top.
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                self._churn(self.bids, self.set_bid, -1, rng, gap)
            else:
                self._churn(self.asks, self.set_ask, +1, rng, gap)
        self._keep_depth(gap, rng)

    def _churn(self, side: dict[int, int], setter: Callable[[int, int], None], direction: int,
               rng: random.Random, gap: int) -> None:
        """direction -1: bids (worse = lower), +1: asks (worse = higher)."""
        best = sorted(side, reverse=direction < 0)[:BOOK_CHURN_LEVELS]
        roll = rng.random()
        if best and roll < 0.5:
            setter(rng.choice(best), self._amount(rng))
        elif best and roll < 0.7 and len(side) > self.depth:
            setter(rng.choice(best), 0)
        else:
            top = best[0] if best else None
            opposite = self.best_ask() if direction < 0 else self.best_bid()
            if top is None:
                return
            # Anywhere from one gap better than the best to a dozen gaps worse, never crossing.
            price = top + direction * rng.randint(-gap, BOOK_CHURN_LEVELS * gap)
            if price <= 0 or price in side:
                return
            if opposite is not None and (price >= opposite if direction < 0 else price <= opposite):
                return
            setter(price, self._amount(rng))

    def _keep_depth(self, gap: int, rng: random.Random) -> None:
        target, most = self.depth + BOOK_EXTRA // 2, self.depth + BOOK_EXTRA
        while len(self.bids) < target:
            price = min(self.bids) - rng.randint(1, gap)
            if price <= 0:
                break
            self.set_bid(price, self._amount(rng))
        while len(self.asks) < target:
            self.set_ask(max(self.asks) + rng.randint(1, gap), self._amount(rng))
        while len(self.bids) > most:
            self.set_bid(min(self.bids), 0)
        while len(self.asks) > most:
            self.set_ask(max(self.asks), 0)

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.bids.items(), reverse=True)[: self.depth]
        asks = sorted(self.asks.items())[: self.depth]
        return bids, asks

    def take_changes(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.changed_bids.items(), reverse=True)
        asks = sorted(self.changed_asks.items())
        self.changed_bids, self.changed_asks = {}, {}
        return bids, asks


@dataclass
class _LivePair:
    market: Market
    book: LiveBook
    next_trade: float                 # monotonic
    next_book: float                  # monotonic
    last_top: Any = None
    last_micro: int = 0               # microtimestamps never go back within a pair
    kinds: set[str] = field(default_factory=set)


# -------------------------------------------------------------------------------------------
# The exchange as the websocket server sees it

class BitstampWs(LiveFeed):
    """Bitstamp's websocket API v2. `trade_interval` / `book_interval`: mean seconds between
    lively trades and between book changes per subscribed pair (None or 0: none). They may be
    changed while running. `strict_channels=False` acknowledges well-formed channels of
    unknown pairs (and sends nothing on them) instead of answering bts:error."""

    name = "bitstamp"

    def __init__(self, clock: Callable[[], float] = time.time, pairs: Sequence[PairSpec] = PAIRS,
                 trade_interval: float | None = 0.2, book_interval: float | None = 0.5,
                 depth: int = BOOK_DEPTH, strict_channels: bool = True, seed: int | None = None,
                 prefix: str = "/bitstamp") -> None:
        if len(pairs) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} pairs")
        self.clock = clock
        self.markets = {spec.url_symbol: Market(spec, i) for i, spec in enumerate(pairs)}
        self.trade_interval = trade_interval
        self.book_interval = book_interval
        self.depth = depth
        self.strict_channels = strict_channels
        self.prefix = prefix
        self._init_feed(seed)
        self._trade_ids = Ids(EPOCH_US)
        self._order_ids = Ids(EPOCH_US, ORDER_ID_BASE)

    def ws_routes(self) -> list[WsRoute]:
        return [WsRoute(self.prefix)]

    # -- what clients send ----------------------------------------------------------------------

    def on_message(self, session: WsSession, message: Frame) -> None:
        document = read_client_json(message)
        if document is NOT_JSON:
            session.send(error_frame(BAD_JSON))
            return
        if not isinstance(document, dict):
            session.send(error_frame(BAD_JSON))
            return
        event = document.get("event")
        if event == "bts:heartbeat":
            session.send(HEARTBEAT_FRAME)
        elif event in ("bts:subscribe", "bts:unsubscribe"):
            data = document.get("data")
            channel = data.get("channel") if isinstance(data, dict) else None
            if not self._valid_channel(channel):
                session.send(error_frame(BAD_SUBSCRIPTION))
                return
            if event == "bts:subscribe":
                session.send(dumps({"event": "bts:subscription_succeeded", "channel": channel,
                                    "data": {}}))
                session.subscribe(channel)   # after the ack: no data before it
            else:
                session.unsubscribe(channel)  # before the ack: no data after it
                session.send(dumps({"event": "bts:unsubscription_succeeded", "channel": channel,
                                    "data": {}}))
            self.wake()
        else:
            session.send(error_frame(BAD_EVENT))

    def _valid_channel(self, channel: Any) -> bool:
        parsed = parse_channel(channel)
        if parsed is None:
            return False
        return parsed[1] in self.markets or not self.strict_channels

    # -- fault hooks ----------------------------------------------------------------------------

    def reconnect_frame(self, session: WsSession) -> Frame:
        return RECONNECT_FRAME

    def garbage_frames(self, session: WsSession, count: int) -> list[Frame]:
        """Non-JSON text, a binary frame, JSON of an unknown event, a trade without its "id";
        repeated to `count` frames. On a channel the connection is subscribed to."""
        channels = session.channels()
        channel = next((c for c in channels if c.startswith("live_trades_")),
                       next(iter(channels), f"live_trades_{next(iter(self.markets))}"))
        parsed = parse_channel(channel)
        pair = parsed[1] if parsed and parsed[1] in self.markets else next(iter(self.markets))
        market, now = self.markets[pair], self.clock()
        price = round(market.mid_ticks(now))
        amount = round(market.spec.typical_amount * market.amount_scale)
        micro = math.floor(now * 1_000_000)
        broken = {"data": {"timestamp": str(micro // 1_000_000), "amount": amount / market.amount_scale,
                           "amount_str": market.amount_str(amount),
                           "price": price / market.price_scale, "price_str": market.price_str(price),
                           "type": 0, "microtimestamp": str(micro), "buy_order_id": ORDER_ID_BASE,
                           "sell_order_id": ORDER_ID_BASE - 1},
                  "channel": f"live_trades_{pair}", "event": "trade"}
        kinds: list[Frame] = [
            '{"data":{"id":' + str(self._trade_ids.last + 1) + ',"timestamp":"17',   # cut short
            b"\x8b\x00\xffbinary frame\x00",
            dumps({"event": "bts:unknown_event", "channel": channel, "data": {"status": "?"}}),
            dumps(broken),
        ]
        return [kinds[i % len(kinds)] for i in range(count)]

    # -- scripted trades ------------------------------------------------------------------------

    def script_trades(self, pair: str, count: int, interval: float = 0.005) -> list[int]:
        """Emit exactly `count` trades on live_trades_{pair} (see WsServer.run_script), in place
        of the lively ones while the script runs. Returns their ids, in order."""
        return self._script(pair, count, interval, self.markets, "pair", f"live_trades_{pair}")

    def blast_trades(self, pair: str, count: int) -> list[int]:
        """For throughput benchmarks: queue `count` trade frames at once on every connection
        subscribed to live_trades_{pair}, as fast as the socket takes them. No faults, no
        exactly-once bookkeeping (that is script_trades). Returns their ids; `blast_started`
        is the monotonic time the first frame went out."""
        server = self._server_started()
        ids = self._take_ids(pair, count)
        frames = [self._scripted_trade(pair, i) for i in ids]   # built first: only sending is timed
        self.blast_started = time.monotonic()
        for session in server.subscribers(self.name, f"live_trades_{pair}"):
            for frame in frames:
                paced_send(session, frame)
        return ids

    def blast_books(self, pair: str, count: int) -> int:
        """For throughput benchmarks: queue `count` order_book_{pair} snapshots (the top 100
        levels a side, the book stepped between frames so that each differs) at once on every
        connection subscribed to that channel. Returns how many frames each subscriber got."""
        server = self._server_started()
        frames = []
        with self._lock:   # built first: only sending is timed
            now_m, now = time.monotonic(), self.clock()
            live = self._live_pair(pair, now_m, now)
            for _ in range(count):
                live.book.step(now, self._rng)
                live.book.take_changes()
                bids, asks = live.book.top()
                frames.append(dumps({"data": self._book_data(live, bids, asks, now),
                                     "channel": f"order_book_{pair}", "event": "data"}))
        self.blast_started = time.monotonic()
        for session in server.subscribers(self.name, f"order_book_{pair}"):
            for frame in frames:
                paced_send(session, frame)
        return len(frames)

    def _scripted_trade(self, pair: str, trade_id: int) -> str:
        with self._lock:
            now = self.clock()
            live = self._live_pair(pair, time.monotonic(), now)
            return dumps(self._trade(pair, live, trade_id, now))

    # -- lively data ----------------------------------------------------------------------------

    def _live_pair(self, pair: str, now_m: float, now: float) -> _LivePair:
        live = self._live.get(pair)
        if live is None:
            market = self.markets[pair]
            live = self._live[pair] = _LivePair(
                market, LiveBook(market, now, self.depth),
                next_trade=now_m + self._next_trade_delay(), next_book=now_m)   # a book at once
        return live

    def _trade(self, pair: str, live: _LivePair, trade_id: int, now: float) -> dict[str, Any]:
        """A trade at the touch, taking liquidity from the level it hits (lock held)."""
        market, rng = live.market, self._rng
        buy, price, amount = self._hit_touch(market, live.book, now)
        side = 0 if buy else 1                      # 0: buy (hits the best ask), 1: sell
        micro = live.last_micro = max(live.last_micro, math.floor(now * 1_000_000))
        taker = self._order_ids.take(1, now)[0]
        maker = taker - rng.randint(1_000, 50_000_000)
        return {"data": {"id": trade_id, "timestamp": str(micro // 1_000_000),
                         "amount": amount / market.amount_scale,
                         "amount_str": market.amount_str(amount),
                         "price": price / market.price_scale, "price_str": market.price_str(price),
                         "type": side, "microtimestamp": str(micro),
                         "buy_order_id": taker if side == 0 else maker,
                         "sell_order_id": maker if side == 0 else taker},
                "channel": f"live_trades_{pair}", "event": "trade"}

    def _book_data(self, live: _LivePair, bids: list[tuple[int, int]],
                   asks: list[tuple[int, int]], now: float) -> dict[str, Any]:
        market = live.market
        micro = live.last_micro = max(live.last_micro, math.floor(now * 1_000_000))
        return {"timestamp": str(micro // 1_000_000), "microtimestamp": str(micro),
                "bids": [[market.price_str(p), market.amount_str(a)] for p, a in bids],
                "asks": [[market.price_str(p), market.amount_str(a)] for p, a in asks]}

    def _split_channel(self, channel: str) -> tuple[str, str] | None:
        parsed = parse_channel(channel)
        return (parsed[1], parsed[0]) if parsed and parsed[1] in self.markets else None

    def _feed(self, server: WsServer, wanted: dict[str, set[str]]) -> float:
        frames: list[tuple[str, str]] = []
        with self._lock:
            now_m, now = time.monotonic(), self.clock()
            self._drop_unwanted(wanted)
            wake_at = now_m + 1.0
            for pair, kinds in wanted.items():
                live = self._live_pair(pair, now_m, now)
                live.kinds = kinds
                frames += self._due_frames(pair, live, now_m, now)
                wake_at = min(wake_at, live.next_trade, live.next_book)
        for channel, frame in frames:
            server.broadcast(self.name, channel, frame)
        return wake_at

    def _due_frames(self, pair: str, live: _LivePair, now_m: float, now: float
                    ) -> list[tuple[str, str]]:
        frames = []
        if not self.trade_interval:
            live.next_trade = math.inf
        elif now_m >= live.next_trade or live.next_trade == math.inf:
            scripted = self._server is not None and self._server.script_active(self.name, pair)
            if now_m >= live.next_trade and "live_trades" in live.kinds and not scripted:
                trade_id = self._trade_ids.take(1, now)[0]
                frames.append((f"live_trades_{pair}", dumps(self._trade(pair, live, trade_id, now))))
            live.next_trade = now_m + self._next_trade_delay()
        if not self.book_interval:
            live.next_book = math.inf
        elif now_m >= live.next_book or live.next_book == math.inf:
            if now_m >= live.next_book:
                live.book.step(now, self._rng)
                # The diff first: snapshot N plus the diff after it gives snapshot N + 1. (Trades
                # taking liquidity since the last step are part of the diff.)
                changed_bids, changed_asks = live.book.take_changes()
                if "diff_order_book" in live.kinds and (changed_bids or changed_asks):
                    frames.append((f"diff_order_book_{pair}", dumps(
                        {"data": self._book_data(live, changed_bids, changed_asks, now),
                         "channel": f"diff_order_book_{pair}", "event": "data"})))
                bids, asks = live.book.top()
                if "order_book" in live.kinds and (bids, asks) != live.last_top:
                    frames.append((f"order_book_{pair}", dumps(
                        {"data": self._book_data(live, bids, asks, now),
                         "channel": f"order_book_{pair}", "event": "data"})))
                live.last_top = (bids, asks)
            live.next_book = now_m + self.book_interval
        return frames


SIM_WS = BitstampWs   # found by proj.sim.default_ws_exchanges()
