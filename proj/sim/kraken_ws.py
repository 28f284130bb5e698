"""Kraken's websocket API v2 (wss://ws.kraken.com/v2), as served by the simulator at /kraken
(ws://HOST:PORT/kraken/v2 works too: the prefix covers every path below it).

Shapes come from Kraken's documentation (docs.kraken.com/api/docs/websocket-v2) and the
documented frames in fixtures/kraken/ws_v2_*.json; nothing is shared with the collector's
parsers.

    <- {"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":...,
        "system":"online","version":"2.0.10"}]}                         (on connecting)
    -> {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]},"req_id":1}
    <- {"method":"subscribe","req_id":1,"result":{"channel":"trade","snapshot":true,
        "symbol":"BTC/USD"},"success":true,"time_in":"...","time_out":"..."}
    <- {"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"buy",
        "price":65000.1,"qty":0.05000000,"ord_type":"limit","trade_id":...,"timestamp":"..."}]}
    <- {"channel":"trade","type":"update","data":[...]}                 (each new trade)
    -> {"method":"ping","req_id":2}   <- {"method":"pong","req_id":2,"time_in":...,"time_out":...}
    <- {"channel":"heartbeat"}        (about once a second when nothing else was sent)

Channels: trade and book (params.depth 10, 25, 100, 500 or 1000; this simulator keeps 100
levels). A book subscription gets one snapshot of the top `depth` levels, then updates: the
levels of its top `depth` that changed or came into view (qty 0: the level is gone; levels
pushed out of view are not announced, as Kraken documents), each with the CRC32 checksum of
the top ten levels. Pairs are named the v2 way (BTC/USD, DOGE/USD); XBT/USD is refused with
{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,...}.

Numbers are written as Kraken writes them: JSON numbers with the pair's decimals, trailing
zeros kept (105944.20, 0.00012460), never in exponent notation.

Lively data: while a pair has subscribers it keeps a live book (bitstamp_ws.LiveBook, started
from the REST side's book of that second and following the same price walk), trades arrive at
random intervals (exponential, mean `trade_interval`) at the touch, and the book changes every
`book_interval` seconds. Kraken has no "please reconnect" frame: the request_reconnect fault
closes the connection after its grace period without one.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from ._livefeed import NOT_JSON, Ids, LiveFeed, read_client_json
from .bitstamp_ws import LiveBook
from .kraken import PAIRS, KrakenMarket, KrakenPair
from .wsserver import Frame, WsRoute, WsServer, WsSession

BOOK_LEVELS = 100              # levels the live book keeps per side
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
TRADE_SNAPSHOT = 50            # trades in a trade subscription's snapshot
API_VERSION, VERSION = "v2", "2.0.10"
CHANNELS = ("trade", "book")
EPOCH_US = 1_500_000_000 * 1_000_000


class Num(str):
    """A number's exact decimal text, written into the JSON unquoted."""


def dumps(value: Any) -> str:
    """Compact JSON in which Num values are bare numbers (json.dumps would quote them, and
    floats would lose their trailing zeros or turn into 1e-05)."""
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamps(received: float) -> dict[str, str]:
    return {"time_in": rfc3339(received), "time_out": rfc3339(time.time())}


def checksum(market: KrakenMarket, bids: Sequence[tuple[int, int]],
             asks: Sequence[tuple[int, int]]) -> int:
    """Kraken's book checksum: CRC32 over the top ten asks (ascending) then the top ten bids
    (descending), each price and qty as written with the point removed and leading zeros
    stripped."""
    def part(levels: Sequence[tuple[int, int]]) -> str:
        return "".join(market.price_str(p).replace(".", "").lstrip("0")
                       + market.amount_str(a).replace(".", "").lstrip("0")
                       for p, a in levels[:10])
    return zlib.crc32((part(asks) + part(bids)).encode())


@dataclass
class _LivePair:
    market: KrakenMarket
    book: LiveBook
    next_trade: float                 # monotonic
    next_book: float                  # monotonic
    kinds: set[str] = field(default_factory=set)


class KrakenWs(LiveFeed):
    """Kraken's websocket API v2. `trade_interval` / `book_interval`: mean seconds between
    lively trades and between book changes per subscribed pair (None or 0: none);
    `heartbeat_interval`: seconds of quiet after which a subscribed connection gets a
    heartbeat. They may be changed while running."""

    name = "kraken"

    def __init__(self, clock: Callable[[], float] = time.time,
                 pairs: Sequence[KrakenPair] = PAIRS, trade_interval: float | None = 0.2,
                 book_interval: float | None = 0.5, heartbeat_interval: float | None = 1.0,
                 seed: int | None = None, prefix: str = "/kraken") -> None:
        self.clock = clock
        self.markets = {pair.wsname: KrakenMarket(pair, i) for i, pair in enumerate(pairs)}
        self.trade_interval = trade_interval
        self.book_interval = book_interval
        self.heartbeat_interval = heartbeat_interval
        self.prefix = prefix
        self._init_feed(seed, threading.RLock())   # live pairs, books, rng, per-session book views
        self._trade_ids = Ids(EPOCH_US)
        self._connection_ids = random.Random(seed)

    def ws_routes(self) -> list[WsRoute]:
        return [WsRoute(self.prefix)]

    # -- what clients send ----------------------------------------------------------------------

    def on_open(self, session: WsSession) -> None:
        session.data.update(last_sent=time.monotonic(), books={})
        # connection ids are 64-bit, beyond a double's exact integers (as Kraken's are)
        connection_id = self._connection_ids.getrandbits(64) | 1 << 63
        self._send(session, dumps({"channel": "status", "type": "update", "data": [{
            "api_version": API_VERSION, "connection_id": connection_id, "system": "online",
            "version": VERSION}]}))

    def on_message(self, session: WsSession, message: Frame) -> None:
        received = time.time()
        document = read_client_json(message)
        if document is NOT_JSON:
            self._send(session, dumps({"error": "Malformed request", "success": False,
                                       **_stamps(received)}))
            return
        method = document.get("method") if isinstance(document, dict) else None
        req_id = document.get("req_id") if isinstance(document, dict) else None
        reply: dict[str, Any] = {"method": method} if isinstance(method, str) else {}
        if req_id is not None:
            reply["req_id"] = req_id
        if method == "ping":
            self._send(session, dumps({**reply, "method": "pong", **_stamps(received)}))
        elif method in ("subscribe", "unsubscribe"):
            params = document.get("params")
            if not isinstance(params, dict) or params.get("channel") not in CHANNELS \
                    or not isinstance(params.get("symbol"), list) or not params["symbol"]:
                channel = params.get("channel") if isinstance(params, dict) else None
                self._send(session, dumps({
                    "error": f"Channel {channel} not supported" if channel and isinstance(
                        channel, str) else "Malformed request",
                    **reply, "success": False, **_stamps(received)}))
                return
            for symbol in params["symbol"]:
                self._subscription(session, method, params, symbol, reply, received)
            self.wake()
        else:
            self._send(session, dumps({"error": "Method not found", **reply, "success": False,
                                       **_stamps(received)}))

    def _subscription(self, session: WsSession, method: str, params: dict[str, Any],
                      symbol: Any, reply: dict[str, Any], received: float) -> None:
        channel_name = params["channel"]
        market = self.markets.get(symbol) if isinstance(symbol, str) else None
        if market is None:
            self._send(session, dumps({"error": f"Currency pair not supported {symbol}", **reply,
                                       "success": False, "symbol": symbol, **_stamps(received)}))
            return
        channel = f"{channel_name}:{symbol}"
        result: dict[str, Any] = {"channel": channel_name}
        depth = 10
        if channel_name == "book":
            depth = params.get("depth", 10)
            if depth not in BOOK_DEPTHS:
                self._send(session, dumps({"error": f"Invalid depth {depth}", **reply,
                                           "success": False, "symbol": symbol,
                                           **_stamps(received)}))
                return
            result["depth"] = depth
        snapshot = params.get("snapshot", True) is not False
        result.update(snapshot=snapshot, symbol=symbol)
        ack = dumps({**reply, "result": result, "success": True, **_stamps(received)})
        if method == "unsubscribe":
            with self._lock:
                session.unsubscribe(channel)   # before the ack: no data after it
                session.data["books"].pop(symbol, None)
            del result["snapshot"]
            self._send(session, dumps({**reply, "result": result, "success": True,
                                       **_stamps(received)}))
            return
        with self._lock:   # the feed must not send this book an update before its snapshot
            self._send(session, ack)
            session.subscribe(channel)   # after the ack: no data before it
            now = self.clock()
            live = self._live_pair(symbol, time.monotonic(), now)
            if channel_name == "book":
                bids, asks = live.book.top()
                view = session.data["books"][symbol] = {
                    "depth": depth, "bids": dict(bids[:depth]), "asks": dict(asks[:depth])}
                if snapshot:
                    self._send(session, self._book_frame(
                        "snapshot", live.market, sorted(view["bids"].items(), reverse=True),
                        sorted(view["asks"].items()), view, now))
            elif snapshot:
                trades = list(reversed(market.trades(now, 3600)[:TRADE_SNAPSHOT]))
                self._send(session, dumps({"channel": "trade", "type": "snapshot", "data": [
                    self._trade_data(market, t.tid, t.side, t.price, t.amount, t.at,
                                     "market" if t.tid % 3 == 0 else "limit")
                    for t in trades]}))

    def _send(self, session: WsSession, frame: Frame) -> bool:
        sent = session.send(frame)
        if sent:
            session.data["last_sent"] = time.monotonic()
        return sent

    # -- fault hooks ----------------------------------------------------------------------------

    def reconnect_frame(self, session: WsSession) -> Frame | None:
        return None   # Kraken says nothing before it closes a connection

    def garbage_frames(self, session: WsSession, count: int) -> list[Frame]:
        """Non-JSON text, a binary frame, JSON of a channel nobody asked for, a trade without
        its trade_id; repeated to `count` frames."""
        channels = session.channels()
        channel = next((c for c in channels if c.startswith("trade:")), "trade:BTC/USD")
        symbol = channel.partition(":")[2]
        market = self.markets.get(symbol) or next(iter(self.markets.values()))
        now = self.clock()
        broken = self._trade_data(market, 0, 0, round(market.mid_ticks(now)),
                                  market.amount_scale, now, "limit")
        del broken["trade_id"]
        kinds: list[Frame] = [
            '{"channel":"trade","type":"update","data":[{"symbol":"' + symbol + '","side":"b',
            b"\x8b\x00\xffbinary frame\x00",
            dumps({"channel": "sim_unknown", "type": "update", "data": [{"symbol": symbol}]}),
            dumps({"channel": "trade", "type": "update", "data": [broken]}),
        ]
        return [kinds[i % len(kinds)] for i in range(count)]

    # -- scripted trades ------------------------------------------------------------------------

    def script_trades(self, symbol: str, count: int, interval: float = 0.005) -> list[int]:
        """Emit exactly `count` trades on trade:{symbol} (see WsServer.run_script), in place of
        the lively ones while the script runs. Returns their trade ids, in order."""
        return self._script(symbol, count, interval, self.markets, "pair", f"trade:{symbol}")

    def _scripted_trade(self, symbol: str, trade_id: int) -> str:
        with self._lock:
            now = self.clock()
            live = self._live_pair(symbol, time.monotonic(), now)
            return self._trade_frame(live, trade_id, now)

    # -- frames ---------------------------------------------------------------------------------

    def _trade_data(self, market: KrakenMarket, trade_id: int, side: int, price: int,
                    amount: int, at: float, ord_type: str) -> dict[str, Any]:
        return {"symbol": market.pair.wsname, "side": "buy" if side == 0 else "sell",
                "price": Num(market.price_str(price)), "qty": Num(market.amount_str(amount)),
                "ord_type": ord_type, "trade_id": trade_id, "timestamp": rfc3339(at)}

    def _trade_frame(self, live: _LivePair, trade_id: int, now: float) -> str:
        """A trade at the touch, taking liquidity from the level it hits (lock held)."""
        market, rng = live.market, self._rng
        buy, price, amount = self._hit_touch(market, live.book, now)
        side = 0 if buy else 1                      # 0: a buy lifts the best ask
        return dumps({"channel": "trade", "type": "update", "data": [self._trade_data(
            market, trade_id, side, price, amount, now,
            "market" if rng.random() < 0.6 else "limit")]})

    def _book_frame(self, kind: str, market: KrakenMarket, bids: list[tuple[int, int]],
                    asks: list[tuple[int, int]], view: dict[str, Any], now: float) -> str:
        top_bids = sorted(view["bids"].items(), reverse=True)
        top_asks = sorted(view["asks"].items())
        return dumps({"channel": "book", "type": kind, "data": [{
            "symbol": market.pair.wsname,
            "bids": [{"price": Num(market.price_str(p)), "qty": Num(market.amount_str(a))}
                     for p, a in bids],
            "asks": [{"price": Num(market.price_str(p)), "qty": Num(market.amount_str(a))}
                     for p, a in asks],
            "checksum": checksum(market, top_bids, top_asks),
            "timestamp": rfc3339(now)}]})

    def _book_update(self, session: WsSession, symbol: str, live: _LivePair,
                     now: float) -> str | None:
        """What changed in this connection's top `depth` (lock held), or None."""
        view = session.data["books"].get(symbol)
        if view is None:
            return None
        depth = view["depth"]
        bids, asks = live.book.top()
        changes = []
        for name, levels, full in (("bids", bids, live.book.bids), ("asks", asks, live.book.asks)):
            old, new = view[name], dict(levels[:depth])
            changed = [(p, a) for p, a in new.items() if old.get(p) != a]
            # gone from the book: qty 0; only pushed out of view: nothing (clients truncate)
            changed += [(p, 0) for p in old if p not in new and p not in full]
            view[name] = new
            changes.append(sorted(changed, reverse=name == "bids"))
        if not changes[0] and not changes[1]:
            return None
        return self._book_frame("update", live.market, changes[0], changes[1], view, now)

    # -- lively data ----------------------------------------------------------------------------

    def _live_pair(self, symbol: str, now_m: float, now: float) -> _LivePair:
        live = self._live.get(symbol)
        if live is None:
            market = self.markets[symbol]
            live = self._live[symbol] = _LivePair(
                market, LiveBook(market, now, BOOK_LEVELS),
                next_trade=now_m + self._next_trade_delay(), next_book=now_m + self._book_delay())
        return live

    def _split_channel(self, channel: str) -> tuple[str, str] | None:
        kind, _, symbol = channel.partition(":")
        return (symbol, kind) if symbol in self.markets else None

    def _feed(self, server: WsServer, wanted: dict[str, set[str]]) -> float:
        now_m = time.monotonic()
        wake_at = now_m + 0.25
        with self._lock:
            now = self.clock()
            self._drop_unwanted(wanted)
            for symbol, kinds in wanted.items():
                live = self._live_pair(symbol, now_m, now)
                live.kinds = kinds
                self._due(symbol, live, now_m, now, server)
                wake_at = min(wake_at, live.next_trade, live.next_book)
        self._heartbeats(server)
        return wake_at

    def _due(self, symbol: str, live: _LivePair, now_m: float, now: float,
             server: WsServer) -> None:
        """Send what is due for one pair (lock held)."""
        if not self.trade_interval:
            live.next_trade = math.inf
        elif now_m >= live.next_trade or live.next_trade == math.inf:
            scripted = server.script_active(self.name, symbol)
            if now_m >= live.next_trade and "trade" in live.kinds and not scripted:
                frame = self._trade_frame(live, self._trade_ids.take(1, now)[0], now)
                for session in server.subscribers(self.name, f"trade:{symbol}"):
                    self._send(session, frame)
            live.next_trade = now_m + self._next_trade_delay()
        if not self.book_interval:
            live.next_book = math.inf
        elif now_m >= live.next_book or live.next_book == math.inf:
            if now_m >= live.next_book:
                live.book.step(now, self._rng)
                live.book.take_changes()   # each connection is told about its own view
                for session in server.subscribers(self.name, f"book:{symbol}"):
                    frame = self._book_update(session, symbol, live, now)
                    if frame is not None:
                        self._send(session, frame)
            live.next_book = now_m + self.book_interval

    def _heartbeats(self, server: WsServer) -> None:
        interval = self.heartbeat_interval
        if not interval:
            return
        now_m = time.monotonic()
        for session in server.sessions(self.name):
            if session.channels() and now_m - session.data.get("last_sent", now_m) >= interval:
                self._send(session, '{"channel":"heartbeat"}')


SIM_WS = KrakenWs   # found by proj.sim.default_ws_exchanges()
