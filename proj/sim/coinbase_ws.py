"""Coinbase Advanced Trade's market-data websocket (wss://advanced-trade-ws.coinbase.com), as
served by the simulator at /coinbase.

Shapes come from Coinbase's documentation (coinbase-app/advanced-trade-apis/websocket/*, the
Advanced Trade AsyncAPI) and recorded frames (fixtures/coinbase/ws_at_*.json and
sequences/ws_at_all_frames_except_l2_snapshots.jsonl); nothing is shared with the collector's
parsers.

    -> {"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}
    <- {"channel":"subscriptions","timestamp":"...","sequence_num":0,
        "events":[{"subscriptions":{"market_trades":["BTC-USD"]}}]}
    <- {"channel":"market_trades","timestamp":"...","sequence_num":1,
        "events":[{"type":"snapshot","trades":[...recent trades, newest first...]}]}
    <- {"channel":"market_trades",...,"events":[{"type":"update","trades":[{"product_id",
        "trade_id","price","size","time","side"}]}]}

One channel per subscribe message: heartbeats (a frame a second, product_ids optional),
market_trades, ticker (one ticker per match; a snapshot on subscribing) and level2 (frames on
channel "l2_data": the whole book as one "snapshot" event on subscribing, then "update" events
of changed levels, new_quantity "0" = level gone). `sequence_num` counts every frame of one
connection, across channels, from 0. A trade's `side` is the MAKER's: "SELL" when a buyer lifts
the ask. Anything the server does not understand is answered {"type":"error","message":...}.
Coinbase has no application-level ping and no "please reconnect" frame: the request_reconnect
fault just closes the connection after its grace period.

Lively data: while a product has subscribers it keeps a live book (bitstamp_ws.LiveBook, started
from the REST side's book of that second and following the same price walk as the REST side) and
trades at random intervals (exponential, mean `trade_interval`) at the touch, taking liquidity.
Trade ids are exchange-wide, unique and increasing, and always above the REST side's.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ._livefeed import NOT_JSON, Ids, LiveFeed, dumps, paced_send, read_client_json
from .bitstamp import MAX_PAIRS
from .bitstamp_ws import EPOCH_US, LiveBook
from .coinbase import PRODUCTS, Product, ProductSpec, rfc3339
from .wsserver import Frame, WsRoute, WsServer, WsSession

CHANNELS = ("heartbeats", "market_trades", "ticker", "level2")
BOOK_DEPTH = 100
SNAPSHOT_TRADES = 50

FAILED_TO_PARSE = "failure to parse message"
BAD_CHANNEL = "Failed to subscribe: unknown channel"
BAD_PRODUCTS = "Failed to subscribe: invalid product_ids"
BAD_TYPE = "Failed to parse message: type must be subscribe or unsubscribe"


def error_frame(message: str) -> str:
    return dumps({"type": "error", "message": message})


def rfc3339_nanos(at: float) -> str:
    """The envelope's timestamp has nine fraction digits ('2026-08-09T21:05:48.228568804Z')."""
    return rfc3339(at, 9)


def go_time(at: float, uptime: float) -> str:
    """A heartbeat's current_time: Go's time.String() with the monotonic reading
    ('2026-08-09 21:05:48.854840045 +0000 UTC m=+41691.260485341')."""
    second = math.floor(at)
    nanos = min(999_999_999, round((at - second) * 1e9))
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            + f".{nanos:09d} +0000 UTC m=+{uptime:.9f}")


def parse_channel(channel: Any) -> tuple[str, str] | None:
    """"market_trades:BTC-USD" -> ("market_trades", "BTC-USD") (the server's channel names)."""
    if not isinstance(channel, str):
        return None
    kind, sep, product = channel.partition(":")
    return (kind, product) if sep and kind in CHANNELS and product else None


@dataclass
class _Live:
    product: Product
    book: LiveBook
    next_trade: float                 # monotonic
    next_book: float                  # monotonic
    recent: deque = field(default_factory=lambda: deque(maxlen=SNAPSHOT_TRADES))  # newest first
    last_price: int = 0
    kinds: set[str] = field(default_factory=set)


class CoinbaseWs(LiveFeed):
    """Coinbase Advanced Trade's market-data websocket. `trade_interval` / `book_interval`: mean
    seconds between lively trades and between book changes per subscribed product (None or 0:
    none); `heartbeat_interval`: seconds between heartbeats (1 on Coinbase). They may be changed
    while running (call wake())."""

    name = "coinbase"

    def __init__(self, clock: Callable[[], float] = time.time,
                 products: Sequence[ProductSpec] = PRODUCTS,
                 trade_interval: float | None = 0.2, book_interval: float | None = 0.5,
                 heartbeat_interval: float | None = 1.0, depth: int = BOOK_DEPTH,
                 seed: int | None = None, prefix: str = "/coinbase") -> None:
        if len(products) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} products")
        self.clock = clock
        self.products = {spec.product_id: Product(spec, i) for i, spec in enumerate(products)}
        self.trade_interval = trade_interval
        self.book_interval = book_interval
        self.heartbeat_interval = heartbeat_interval
        self.depth = depth
        self.prefix = prefix
        # Reentrant: a first subscription may fire a pending fault (garbage) that calls back in.
        self._init_feed(seed, threading.RLock())
        self._trade_ids = Ids(EPOCH_US)
        self._heartbeats = 0
        self._next_heartbeat = 0.0
        self._started = time.monotonic()

    def ws_routes(self) -> list[WsRoute]:
        return [WsRoute(self.prefix)]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, server: WsServer) -> None:
        self._started = time.monotonic()
        super().start(server)

    # -- sending: every frame of a connection carries the next sequence_num ---------------------

    def on_open(self, session: WsSession) -> None:
        session.data.update(seq=0, seq_lock=threading.Lock(), subs={})

    def _next_seq(self, session: WsSession) -> int:
        with session.data["seq_lock"]:
            seq = session.data["seq"]
            session.data["seq"] = seq + 1
            return seq

    def _frame(self, channel: str, events: str, seq: int, now: float) -> str:
        return (f'{{"channel":"{channel}","timestamp":"{rfc3339_nanos(now)}",'
                f'"sequence_num":{seq},"events":{events}}}')

    def _emit(self, session: WsSession, channel: str, events: str, now: float) -> bool:
        # Numbered and queued under one lock, so frames leave in sequence_num order.
        with session.data["seq_lock"]:
            seq = session.data["seq"]
            session.data["seq"] = seq + 1
            return session.send(self._frame(channel, events, seq, now))

    def _emit_all(self, server_channel: str, channel: str, events: str, now: float) -> None:
        assert self._server is not None
        for session in self._server.subscribers(self.name, server_channel):
            self._emit(session, channel, events, now)

    # -- what clients send ----------------------------------------------------------------------

    def on_message(self, session: WsSession, message: Frame) -> None:
        document = read_client_json(message)
        if document is NOT_JSON:
            session.send(error_frame(FAILED_TO_PARSE))
            return
        if not isinstance(document, dict):
            session.send(error_frame(FAILED_TO_PARSE))
            return
        kind, channel = document.get("type"), document.get("channel")
        products = document.get("product_ids") or []
        if kind not in ("subscribe", "unsubscribe"):
            session.send(error_frame(BAD_TYPE))
            return
        if channel not in CHANNELS:      # also {"channels": [...]}, the Exchange API's form
            session.send(error_frame(BAD_CHANNEL))
            return
        if (not isinstance(products, list) or not all(p in self.products for p in products)
                or (channel != "heartbeats" and not products)):
            session.send(error_frame(BAD_PRODUCTS))
            return
        if kind == "subscribe":
            self._subscribe(session, channel, list(dict.fromkeys(products)))
        else:
            self._unsubscribe(session, channel, products)
        self.wake()

    def _server_channels(self, channel: str, products: list[str]) -> list[str]:
        return ["heartbeats"] if channel == "heartbeats" else [f"{channel}:{p}" for p in products]

    def _subscriptions_events(self, session: WsSession) -> str:
        return dumps([{"subscriptions": {ch: list(ps) for ch, ps in session.data["subs"].items()
                                         if ps or ch == "heartbeats"}}])

    def _subscribe(self, session: WsSession, channel: str, products: list[str]) -> None:
        with self._lock:   # the feed waits: nothing of these channels before their snapshot
            now_m, now = time.monotonic(), self.clock()
            subs = session.data["subs"].setdefault(channel, [])
            subs += [p for p in products if p not in subs]
            self._emit(session, "subscriptions", self._subscriptions_events(session), now)
            for server_channel in self._server_channels(channel, products):
                session.subscribe(server_channel)   # after the ack: no data before it
            for product_id in products if channel != "heartbeats" else ():
                live = self._live_pair(product_id, now_m, now)
                live.kinds.add(channel)
                snapshot = self._snapshot(channel, product_id, live, now)
                if snapshot is not None:
                    self._emit(session, *snapshot, now)

    def _unsubscribe(self, session: WsSession, channel: str, products: list[str]) -> None:
        with self._lock:
            now = self.clock()
            for server_channel in self._server_channels(channel, products or
                                                         session.data["subs"].get(channel, [])):
                session.unsubscribe(server_channel)   # before the ack: no data after it
            if channel == "heartbeats":
                session.data["subs"].pop(channel, None)
            else:
                left = [p for p in session.data["subs"].get(channel, []) if p not in products]
                session.data["subs"][channel] = left
            self._emit(session, "subscriptions", self._subscriptions_events(session), now)

    # -- documents in Coinbase's websocket shapes -----------------------------------------------

    def _snapshot(self, channel: str, product_id: str, live: _Live, now: float
                  ) -> tuple[str, str] | None:
        if channel == "market_trades":
            return "market_trades", dumps([{"type": "snapshot", "trades": list(live.recent)}])
        if channel == "ticker":
            return "ticker", dumps([{"type": "snapshot", "tickers": [self._ticker(live, now)]}])
        if channel == "level2":
            bids = sorted(live.book.bids.items(), reverse=True)
            asks = sorted(live.book.asks.items())
            return "l2_data", dumps([{"type": "snapshot", "product_id": product_id,
                                      "updates": self._levels(live, bids, asks, now)}])
        return None

    def _levels(self, live: _Live, bids, asks, now: float) -> list[dict[str, str]]:
        product, at = live.product, rfc3339(now)
        return ([{"side": "bid", "event_time": at, "price_level": product.price(p),
                  "new_quantity": product.size(a)} for p, a in bids]
                + [{"side": "offer", "event_time": at, "price_level": product.price(p),
                    "new_quantity": product.size(a)} for p, a in asks])

    def _ticker(self, live: _Live, now: float) -> dict[str, str]:
        product, stats = live.product, live.product.stats(now)
        price = live.last_price or stats["price"]
        bid, ask = live.book.best_bid(), live.book.best_ask()
        change = (price - stats["open"]) / stats["open"] * 100 if stats["open"] else 0.0
        low_52, high_52 = self._year_range(product, now)
        return {"type": "ticker", "product_id": product.spec.product_id,
                "price": product.price(price), "volume_24_h": product.size(stats["volume"]),
                "low_24_h": product.price(min(stats["low"], price)),
                "high_24_h": product.price(max(stats["high"], price)),
                "low_52_w": product.price(min(low_52, price)),
                "high_52_w": product.price(max(high_52, price)),
                "price_percent_chg_24_h": f"{change:.14f}",
                "best_bid": product.price(bid) if bid else "",
                "best_ask": product.price(ask) if ask else "",
                "best_bid_quantity": product.size(live.book.bids[bid]) if bid else "",
                "best_ask_quantity": product.size(live.book.asks[ask]) if ask else ""}

    @functools.lru_cache(maxsize=64)
    def _year_range_of_day(self, product_id: str, day: int) -> tuple[int, int]:
        candles = self.products[product_id].market.candles(7 * 86400, 52, day * 86400)
        return min(c.low for c in candles), max(c.high for c in candles)

    def _year_range(self, product: Product, now: float) -> tuple[int, int]:
        return self._year_range_of_day(product.spec.product_id, math.floor(now / 86400))

    def _trade(self, live: _Live, trade_id: int, now: float) -> dict[str, str]:
        """A trade at the touch, taking liquidity from the level it hits (lock held)."""
        product = live.product
        taker_buys, price, amount = self._hit_touch(product.market, live.book, now)
        live.last_price = price
        trade = {"product_id": product.spec.product_id, "trade_id": str(trade_id),
                 "price": product.price(price), "size": product.size(amount),
                 "time": rfc3339(now), "side": "SELL" if taker_buys else "BUY"}   # maker's side
        live.recent.appendleft(trade)
        return trade

    # -- fault hooks ----------------------------------------------------------------------------

    def reconnect_frame(self, session: WsSession) -> Frame | None:
        return None   # Coinbase has no such frame: the connection just closes

    def garbage_frames(self, session: WsSession, count: int) -> list[Frame]:
        """A frame cut short, a binary frame, a frame of an unknown channel, a trade without
        its price; repeated to `count` frames. Numbered like every other frame."""
        subscribed = [parse_channel(c) for c in session.channels()]
        product_id = next((p[1] for p in subscribed if p and p[0] == "market_trades"),
                          next(iter(self.products)))
        now = self.clock()
        with self._lock:
            live = self._live_pair(product_id, time.monotonic(), now)
            broken = dict(self._trade(live, self._trade_ids.take(1, now)[0], now))
        del broken["price"]
        kinds: list[Callable[[int], Frame]] = [
            lambda seq: self._frame("market_trades", "", seq, now)[:60],
            lambda seq: b"\x8b\x00\xffbinary frame\x00",
            lambda seq: self._frame("sim_unknown_channel", "[]", seq, now),
            lambda seq: self._frame("market_trades",
                                    dumps([{"type": "update", "trades": [broken]}]), seq, now),
        ]
        return [kinds[i % len(kinds)](self._next_seq(session)) for i in range(count)]

    # -- scripted trades ------------------------------------------------------------------------

    def script_trades(self, pair: str, count: int, interval: float = 0.005) -> list[int]:
        """Emit exactly `count` trades on market_trades of product `pair` (e.g. "BTC-USD"; see
        WsServer.run_script), in place of the lively ones while the script runs. Returns
        their trade ids, in order."""
        return self._script(pair, count, interval, self.products, "product",
                            f"market_trades:{pair}")

    def blast_trades(self, pair: str, count: int) -> list[int]:
        """For throughput benchmarks: queue `count` trade frames at once on every connection
        subscribed to the product's market_trades. Returns their ids."""
        server = self._server_started()
        ids = self._take_ids(pair, count)
        with self._lock:
            now = self.clock()
            live = self._live_pair(pair, time.monotonic(), now)
            events = [dumps([{"type": "update", "trades": [self._trade(live, i, now)]}])
                      for i in ids]
        def emit(session: WsSession, payload: Frame) -> None:
            self._emit(session, "market_trades", payload, now)   # type: ignore[arg-type]
        for session in server.subscribers(self.name, f"market_trades:{pair}"):
            for payload in events:
                paced_send(session, payload, emit)
        return ids

    def _scripted_trade(self, pair: str, trade_id: int) -> str:
        with self._lock:
            now = self.clock()
            live = self._live_pair(pair, time.monotonic(), now)
            events = dumps([{"type": "update", "trades": [self._trade(live, trade_id, now)]}])
        # The engine sends it to the usable connection subscribed most recently: number it
        # from that connection's sequence (a frame sent meanwhile may take a number between).
        target = self._likely_target(f"market_trades:{pair}")
        seq = self._next_seq(target) if target is not None else 0
        return self._frame("market_trades", events, seq, now)

    def _likely_target(self, channel: str) -> WsSession | None:
        assert self._server is not None
        best, best_serial = None, -1
        for session in self._server.subscribers(self.name, channel):
            serial = session.subscriptions.get(channel)
            if session.usable and serial is not None and serial > best_serial:
                best, best_serial = session, serial
        return best

    # -- lively data ----------------------------------------------------------------------------

    def _live_pair(self, product_id: str, now_m: float, now: float) -> _Live:
        live = self._live.get(product_id)
        if live is None:
            product = self.products[product_id]
            live = self._live[product_id] = _Live(
                product, LiveBook(product.market, now, self.depth),
                next_trade=now_m + self._next_trade_delay(), next_book=now_m + self._book_delay())
            # the snapshot's history: the REST side's trades, in the websocket's shape
            for trade in product.recent_trades(now, SNAPSHOT_TRADES):
                document = product.trade_document(trade)
                live.recent.append({key: document[key] for key in
                                    ("product_id", "trade_id", "price", "size", "time", "side")})
            live.last_price = int(product.stats(now)["price"])
        return live

    def _split_channel(self, channel: str) -> tuple[str, str] | None:
        parsed = parse_channel(channel)
        return (parsed[1], parsed[0]) if parsed and parsed[1] in self.products else None

    def _feed(self, server: WsServer, wanted: dict[str, set[str]]) -> float:
        with self._lock:
            now_m, now = time.monotonic(), self.clock()
            self._drop_unwanted(wanted)
            wake_at = now_m + 1.0
            for product_id, kinds in wanted.items():
                live = self._live_pair(product_id, now_m, now)
                live.kinds = kinds
                self._due(product_id, live, now_m, now)
                wake_at = min(wake_at, live.next_trade, live.next_book)
            return min(wake_at, self._heartbeat(now_m, now))

    def _heartbeat(self, now_m: float, now: float) -> float:
        """Heartbeats to every connection subscribed to them; when the next one is due."""
        interval = self.heartbeat_interval
        if not interval:
            return math.inf
        if now_m >= self._next_heartbeat:
            self._heartbeats += 1
            uptime = now_m - self._started
            events = dumps([{"current_time": go_time(now, uptime),
                             "heartbeat_counter": self._heartbeats}])
            self._emit_all("heartbeats", "heartbeats", events, now)
            self._next_heartbeat = now_m + interval
        return self._next_heartbeat

    def _due(self, product_id: str, live: _Live, now_m: float, now: float) -> None:
        """The trade and book change due now, sent to their subscribers (lock held)."""
        assert self._server is not None
        if not self.trade_interval:
            live.next_trade = math.inf
        elif now_m >= live.next_trade or live.next_trade == math.inf:
            scripted = self._server.script_active(self.name, product_id)
            if now_m >= live.next_trade and not scripted and live.kinds & {"market_trades",
                                                                           "ticker"}:
                trade = self._trade(live, self._trade_ids.take(1, now)[0], now)
                self._emit_all(f"market_trades:{product_id}", "market_trades",
                               dumps([{"type": "update", "trades": [trade]}]), now)
                self._emit_all(f"ticker:{product_id}", "ticker",
                               dumps([{"type": "update", "tickers": [self._ticker(live, now)]}]),
                               now)
            live.next_trade = now_m + self._next_trade_delay()
        if not self.book_interval:
            live.next_book = math.inf
        elif now_m >= live.next_book or live.next_book == math.inf:
            if now_m >= live.next_book:
                live.book.step(now, self._rng)
                bids, asks = live.book.take_changes()   # trades' takings since the last step too
                if "level2" in live.kinds and (bids or asks):
                    self._emit_all(f"level2:{product_id}", "l2_data", dumps([{
                        "type": "update", "product_id": product_id,
                        "updates": self._levels(live, bids, asks, now)}]), now)
            live.next_book = now_m + self.book_interval


SIM_WS = CoinbaseWs   # found by proj.sim.default_ws_exchanges()
