"""Binance spot websocket market streams (wss://stream.binance.com:9443), as served by the
simulator under /binance: /binance/stream?streams=... (combined) and /binance/ws/<stream>
(raw). Shapes come from Binance's documentation (web-socket-streams.md) and recorded frames
(fixtures/binance/ws_*.json); nothing is shared with the collector's parsers.

    -> GET /binance/stream?streams=btcusdt@trade/btcusdt@depth20@100ms     (no subscribe frame)
    <- {"stream":"btcusdt@trade","data":{"e":"trade","E":..,"s":"BTCUSDT","t":..,"p":"..",
        "q":"..","T":..,"m":true,"M":true}}
    <- {"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":..,"bids":[..],"asks":[..]}}
    -> {"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":1}
    <- {"result":null,"id":1}

Streams: <symbol>@trade (every trade, real time) and <symbol>@depth<5|10|20>[@100ms|@1000ms]
(the top levels every 100 ms or every second; no symbol and no time in the payload). Raw
connections (/ws/...) get the bare payloads, combined ones the {"stream", "data"} wrapper
(SET_PROPERTY "combined" switches). Control frames: SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY, answered {"result": ..., "id": ...} or with the
documented errors {"code": n, "msg": ...}.

Connection rules, as documented: the server sends a protocol ping every `ping_interval`
seconds (20) and closes a connection whose pong does not come within `pong_timeout` (60);
a connection lives `max_connection_age` (24 h): `shutdown_notice` seconds before that it gets a
serverShutdown event, then it is closed. The generic request_reconnect fault sends the same
serverShutdown event.

Lively data: while a symbol has subscribers it keeps a live book, started from the REST
side's book and moved along the same price walk (binance.Market), so websocket and REST
prices agree; trades arrive at random intervals (mean `trade_interval`) at the touch.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from ._livefeed import Ids, LiveFeed, dumps, paced_send
from .binance import PAIRS, Market, PairSpec, amount_str, price_str, update_id
from .bitstamp_ws import LiveBook
from .wsserver import Frame, WsRoute, WsServer, WsSession

STREAM_RE = re.compile(r"(?P<symbol>[a-z0-9]+)@(?:(?P<trade>trade)|"
                       r"depth(?P<levels>5|10|20)(?:@(?P<speed>100ms|1000ms))?)")
BOOK_LEVELS = 20
ID_EPOCH_US = 1_500_000_000 * 1_000_000   # trade ids: microseconds since 2017-07-14 (rising)
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")


def error_frame(code: int, msg: str, request_id: Any = None, with_id: bool = False) -> str:
    document: dict[str, Any] = {"code": code, "msg": msg}
    if with_id:
        document["id"] = request_id
    return dumps(document)


def server_shutdown_frame(now: float) -> str:
    # As documented for Binance's websocket connections (connection events).
    return dumps({"event": {"e": "serverShutdown", "E": math.floor(now * 1000)}})


def parse_stream(name: Any) -> tuple[str, str, float] | None:
    """"btcusdt@depth20@100ms" -> ("btcusdt", "depth20", 0.1); "ethusdt@trade" ->
    ("ethusdt", "trade", 0.0); None if it is not a stream the simulator knows."""
    if not isinstance(name, str):
        return None
    match = STREAM_RE.fullmatch(name)
    if match is None:
        return None
    if match["trade"]:
        return match["symbol"], "trade", 0.0
    return match["symbol"], f"depth{match['levels']}", 0.1 if match["speed"] == "100ms" else 1.0


@dataclass
class _LiveSymbol:
    market: Market
    book: LiveBook
    next_trade: float                      # monotonic
    next_step: float                       # monotonic: the book moves every 100 ms
    last_update_id: int = 0
    due: dict[str, float] = field(default_factory=dict)   # depth stream -> monotonic


class BinanceWs(LiveFeed):
    """Binance's websocket market streams. `trade_interval`: mean seconds between lively
    trades per subscribed symbol (None or 0: none); may be changed while running."""

    name = "binance"

    def __init__(self, clock: Callable[[], float] = time.time, pairs: Sequence[PairSpec] = PAIRS,
                 trade_interval: float | None = 0.2, ping_interval: float = 20.0,
                 pong_timeout: float = 60.0, max_connection_age: float = 24 * 3600.0,
                 shutdown_notice: float = 600.0, seed: int | None = None,
                 prefix: str = "/binance") -> None:
        self.clock = clock
        self.markets = {spec.url_symbol.lower(): Market(spec, i) for i, spec in enumerate(pairs)}
        self.trade_interval = trade_interval
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_connection_age = max_connection_age
        self.shutdown_notice = shutdown_notice
        self.prefix = prefix.rstrip("/")
        self._init_feed(seed)
        self._trade_ids = Ids(ID_EPOCH_US)

    def ws_routes(self) -> list[WsRoute]:
        # The first route is what Simulator.ws_url_for("binance") names: the combined endpoint.
        return [WsRoute(self.prefix + "/stream", "combined"), WsRoute(self.prefix + "/ws", "raw"),
                WsRoute(self.prefix, "combined")]

    # -- connections ----------------------------------------------------------------------------

    def on_open(self, session: WsSession) -> None:
        request = getattr(session.connection, "request", None)
        target = urlsplit(getattr(request, "path", session.path) or session.path)
        session.data.update(combined=session.route.endpoint != "raw", opened=time.monotonic(),
                            last_ping=time.monotonic(), pings=[], shutdown_sent=False)
        if session.route.endpoint == "raw":
            streams = target.path[len(self.prefix + "/ws"):].strip("/").split("/")
        else:
            streams = parse_qs(target.query).get("streams", [""])[0].split("/")
        for stream in filter(None, streams):
            if parse_stream(stream) is not None:   # anything else: accepted, never sent on
                session.subscribe(stream)
        self.wake()

    def on_message(self, session: WsSession, message: Frame) -> None:
        try:
            text = message.decode() if isinstance(message, bytes) else message
            document = json.loads(text)
        except ValueError:   # UnicodeDecodeError and JSONDecodeError alike
            session.send(error_frame(3, "Invalid JSON: expected value at line 1 column 1"))
            return
        if not isinstance(document, dict):
            session.send(error_frame(2, "Invalid request: expected a JSON object"))
            return
        request_id = document.get("id")
        if not (request_id is None or (isinstance(request_id, int) and not isinstance(request_id, bool))
                or (isinstance(request_id, str) and _ID_RE.fullmatch(request_id))):
            session.send(error_frame(2, "Invalid request: request ID must be an unsigned integer"))
            return
        method = document.get("method")
        if method is None:
            session.send(error_frame(2, "Invalid request: missing field `method` at line 1 "
                                        f"column {len(text)}"))
            return
        if method not in METHODS:
            session.send(error_frame(2, f"Invalid request: unknown variant `{method}`, expected "
                                        "one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                        "`SET_PROPERTY`, `GET_PROPERTY` at line 1 column 28"))
            return
        params = document.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                session.send(error_frame(2, "Invalid request: params must be a list of stream names"))
                return
            if method == "SUBSCRIBE":
                session.send(dumps({"result": None, "id": request_id}))
                for stream in params:   # after the ack: no data before it
                    if parse_stream(stream) is not None:
                        session.subscribe(stream)
            else:
                for stream in params:   # before the ack: no data after it
                    session.unsubscribe(stream)
                session.send(dumps({"result": None, "id": request_id}))
            self.wake()
        elif method == "LIST_SUBSCRIPTIONS":
            session.send(dumps({"result": session.channels(), "id": request_id}))
        elif method == "SET_PROPERTY":
            if not isinstance(params, list) or len(params) != 2 or not isinstance(params[0], str):
                session.send(error_frame(2, "Invalid request: property name must be a string"))
            elif params[0] != "combined":
                session.send(error_frame(0, "Unknown property", request_id, with_id=True))
            elif not isinstance(params[1], bool):
                session.send(error_frame(1, "Invalid value type: expected Boolean"))
            else:
                session.data["combined"] = params[1]
                session.send(dumps({"result": None, "id": request_id}))
        else:   # GET_PROPERTY
            if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
                session.send(error_frame(2, "Invalid request: property name must be a string"))
            elif params[0] != "combined":
                session.send(error_frame(0, "Unknown property", request_id, with_id=True))
            else:
                session.send(dumps({"result": session.data.get("combined", True), "id": request_id}))

    # -- fault hooks ----------------------------------------------------------------------------

    def reconnect_frame(self, session: WsSession) -> Frame:
        return server_shutdown_frame(self.clock())

    def garbage_frames(self, session: WsSession, count: int) -> list[Frame]:
        """Cut-short JSON, a binary frame, an event of an unknown type, a trade without its
        price; repeated to `count` frames. On a stream the connection is subscribed to."""
        channels = session.channels()
        stream = next((c for c in channels if c.endswith("@trade")),
                      next(iter(channels), f"{next(iter(self.markets))}@trade"))
        symbol = stream.split("@")[0]
        market = self.markets.get(symbol) or next(iter(self.markets.values()))
        now_ms = math.floor(self.clock() * 1000)
        broken = {"e": "trade", "E": now_ms, "s": market.spec.url_symbol,
                  "t": self._trade_ids.last + 1, "q": amount_str(market, 1), "T": now_ms,
                  "m": False, "M": True}
        kinds: list[Frame] = [
            '{"stream":"' + stream + '","data":{"e":"trade","E":' + str(now_ms)[:6],
            b"\x8b\x00\xffbinary frame\x00",
            dumps({"stream": stream, "data": {"e": "unknownEvent", "E": now_ms}}),
            dumps({"stream": f"{symbol}@trade", "data": broken}),
        ]
        return [kinds[i % len(kinds)] for i in range(count)]

    # -- scripted trades ------------------------------------------------------------------------

    def script_trades(self, pair: str, count: int, interval: float = 0.005) -> list[int]:
        """Emit exactly `count` trades on <pair>@trade (see WsServer.run_script), in place of
        the lively ones while the script runs; sent in the combined form. Returns their ids."""
        pair = pair.lower()
        return self._script(pair, count, interval, self.markets, "symbol", f"{pair}@trade")

    def blast_trades(self, pair: str, count: int) -> list[int]:
        """For throughput benchmarks: queue `count` trade frames at once on every connection
        subscribed to <pair>@trade, in that connection's form, as fast as the socket takes
        them. No faults, no exactly-once bookkeeping (that is script_trades). Returns the ids."""
        pair = pair.lower()
        if pair not in self.markets:
            raise ValueError(f"unknown symbol {pair!r}; known: {', '.join(self.markets)}")
        server = self._server_started()
        ids = self._take_ids(pair, count)
        with self._lock:   # built first: only sending is timed
            now = self.clock()
            live = self._live_symbol(pair, time.monotonic(), now)
            payloads = [self._trade(live, i, now) for i in ids]
        stream = f"{pair}@trade"
        combined = [dumps({"stream": stream, "data": p}) for p in payloads]
        raw = [dumps(p) for p in payloads]
        for session in server.subscribers(self.name, stream):
            for frame in combined if session.data.get("combined", True) else raw:
                paced_send(session, frame)
        return ids

    def _scripted_trade(self, pair: str, trade_id: int) -> str:
        with self._lock:
            now = self.clock()
            live = self._live_symbol(pair, time.monotonic(), now)
            return dumps({"stream": f"{pair}@trade", "data": self._trade(live, trade_id, now)})

    # -- lively data ----------------------------------------------------------------------------

    def _live_symbol(self, symbol: str, now_m: float, now: float) -> _LiveSymbol:
        live = self._live.get(symbol)
        if live is None:
            market = self.markets[symbol]
            live = self._live[symbol] = _LiveSymbol(
                market, LiveBook(market, now, BOOK_LEVELS),
                next_trade=now_m + self._next_trade_delay(), next_step=now_m,
                last_update_id=update_id(now))
        return live

    def _trade(self, live: _LiveSymbol, trade_id: int, now: float) -> dict[str, Any]:
        """A trade at the touch, taking liquidity from the level it hits (lock held)."""
        market = live.market
        buy, price, amount = self._hit_touch(market, live.book, now, always_take=True)
        live.last_update_id += 1
        now_ms = math.floor(now * 1000)
        return {"e": "trade", "E": now_ms, "s": market.spec.url_symbol, "t": trade_id,
                "p": price_str(market, price), "q": amount_str(market, amount), "T": now_ms,
                "m": not buy, "M": True}

    def _snapshot(self, live: _LiveSymbol, levels: int) -> dict[str, Any]:
        bids, asks = live.book.top()
        market = live.market
        return {"lastUpdateId": live.last_update_id,
                "bids": [[price_str(market, p), amount_str(market, a)] for p, a in bids[:levels]],
                "asks": [[price_str(market, p), amount_str(market, a)] for p, a in asks[:levels]]}

    def _split_channel(self, channel: str) -> tuple[str, str] | None:
        parsed = parse_stream(channel)
        return (parsed[0], channel) if parsed and parsed[0] in self.markets else None

    def _feed(self, server: WsServer, wanted: dict[str, set[str]]) -> float:
        sends: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            now_m, now = time.monotonic(), self.clock()
            self._drop_unwanted(wanted)
            wake_at = now_m + 0.5
            for symbol, channels in wanted.items():
                live = self._live_symbol(symbol, now_m, now)
                sends += self._due(symbol, live, channels, now_m, now)
                wake_at = min([wake_at, live.next_trade, live.next_step, *live.due.values()])
        for channel, payload in sends:
            self._send(server, channel, payload)
        self._connection_rules(server)
        return wake_at

    def _due(self, symbol: str, live: _LiveSymbol, channels: set[str], now_m: float, now: float
             ) -> list[tuple[str, dict[str, Any]]]:
        sends = []
        trades = f"{symbol}@trade"
        if not self.trade_interval:
            live.next_trade = math.inf
        elif now_m >= live.next_trade or live.next_trade == math.inf:
            scripted = self._server is not None and self._server.script_active(self.name, symbol)
            if now_m >= live.next_trade and trades in channels and not scripted:
                trade_id = self._trade_ids.take(1, now)[0]
                sends.append((trades, self._trade(live, trade_id, now)))
            live.next_trade = now_m + self._next_trade_delay()
        books = [c for c in channels if c != trades]
        for gone in [c for c in live.due if c not in books]:
            del live.due[gone]
        if books and now_m >= live.next_step:
            live.book.step(now, self._rng)
            live.book.take_changes()   # no diff stream here: forget them
            live.last_update_id = max(live.last_update_id + 1, update_id(now))
            live.next_step = now_m + 0.1
        elif not books:
            live.next_step = now_m + 0.1
        for channel in books:
            parsed = parse_stream(channel)
            assert parsed is not None
            due = live.due.setdefault(channel, now_m)
            if now_m >= due:
                sends.append((channel, self._snapshot(live, int(parsed[1][5:]))))
                live.due[channel] = max(due + parsed[2], now_m)
        return sends

    def _send(self, server: WsServer, channel: str, payload: dict[str, Any]) -> None:
        combined = raw = None
        for session in server.subscribers(self.name, channel):
            if session.data.get("combined", True):
                combined = combined or dumps({"stream": channel, "data": payload})
                session.send(combined)
            else:
                raw = raw or dumps(payload)
                session.send(raw)

    def _connection_rules(self, server: WsServer) -> None:
        """Pings, pong deadlines and the connection's lifetime, for every open connection."""
        now_m = time.monotonic()
        for session in server.sessions(self.name):
            data = session.data
            if "opened" not in data or not session.usable:
                continue
            age = now_m - data["opened"]
            if not data["shutdown_sent"] and age >= self.max_connection_age - self.shutdown_notice:
                data["shutdown_sent"] = True
                session.request_reconnect(max(0.0, self.max_connection_age - age),
                                          server_shutdown_frame(self.clock()))
            if self.ping_interval and now_m - data["last_ping"] >= self.ping_interval:
                data["last_ping"] = now_m
                try:
                    data["pings"].append((now_m, session.connection.ping()))
                except Exception:   # closing, or a ping still unanswered with the same payload
                    pass
            pending = [(sent, pong) for sent, pong in data["pings"] if not pong.is_set()]
            data["pings"] = pending
            if pending and now_m - pending[0][0] > self.pong_timeout:
                data["pings"] = []
                try:
                    session.connection.close(1008, "pong timeout")
                except Exception:
                    pass


SIM_WS = BinanceWs   # found by proj.sim.default_ws_exchanges()
