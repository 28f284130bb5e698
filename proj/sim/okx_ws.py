"""OKX's public websocket (wss://ws.okx.com:8443/ws/v5/public), as served by the simulator at
/okx/ws/v5/public (and anything else under /okx).

Shapes come from OKX's documentation (https://www.okx.com/docs-v5/en/#overview-websocket) and
recorded frames (fixtures/okx/ws_*.json, fixtures/okx/sequences/*.jsonl); nothing is shared with
the collector's parsers.

    -> {"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}
    <- {"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}
    <- {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":...}]}
    -> ping                                  (the text, not JSON)
    <- pong
    <- {"event":"error","code":"60018","msg":"channel:tickers,instId:LTC-USD doesn't exist","connId":...}
    <- {"event":"notice","code":"64008","msg":"The connection will soon be closed ...","connId":...}

Channels: trades, books5 (the best 5 levels of each side, pushed whenever they change, with
seqId), bbo-tbt (the best level), books (a 400-level snapshot, then incremental updates with
prevSeqId/seqId and a CRC32 checksum of the best 25 levels; size "0" removes a level) and
tickers. Anything else, or an unknown instrument, is refused with error 60018; a request
that is not JSON, or not a subscribe/unsubscribe with a list of args, with 60012.

As OKX does, a connection on which nothing has been sent or received for `idle_timeout`
seconds (30) is closed by the server: clients keep it open with "ping". A stalled connection
(the "stall" fault) answers no ping either: the server reads nothing while stalled.

Lively data: while an instrument has subscribers it keeps a live book (bitstamp_ws.LiveBook
over okx.OkxMarket, which follows the same price walk as the REST side), changed every
`book_interval` seconds on average, and trades at random intervals (mean `trade_interval`),
buys at the best ask and sells at the best bid, taking liquidity from that level.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ._livefeed import Ids, LiveFeed, dumps, paced_send
from .bitstamp import PairSpec
from .bitstamp_ws import LiveBook
from .okx import PAIRS, OkxMarket, num_orders
from .wsserver import Frame, WsRoute, WsServer, WsSession

CHANNELS = ("trades", "books5", "bbo-tbt", "books", "tickers")
BOOK_DEPTH = 400           # the books channel's snapshot depth
CHECKSUM_LEVELS = 25
IDLE_TIMEOUT = 30.0        # seconds without any frame either way before OKX closes
IDLE_CLOSE_CODE, IDLE_CLOSE_REASON = 4004, "No data received in 30s."
EPOCH_US = 1_500_000_000 * 1_000_000   # trade ids: microseconds since then, per instrument
NOTICE_MESSAGE = "The connection will soon be closed for a service upgrade. Please reconnect."


def parse_channel(channel: Any) -> tuple[str, str] | None:
    """"books5:BTC-USDT" -> ("books5", "BTC-USDT"): how subscriptions are named here."""
    if not isinstance(channel, str):
        return None
    kind, sep, inst = channel.partition(":")
    return (kind, inst) if sep and kind in CHANNELS and inst else None


def checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's book checksum: CRC32 of "bid:size:ask:size:..." over the best 25 levels of each
    side, interleaved (the longer side goes on alone), as a signed 32-bit integer."""
    parts = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class _LiveInst:
    market: OkxMarket
    book: LiveBook
    next_trade: float                 # monotonic
    next_book: float                  # monotonic
    seq: int = 0                      # seqId of the last book state
    last_top5: Any = None
    last_bbo: Any = None
    last_ms: int = 0                  # frame times never go back within an instrument
    kinds: set[str] = field(default_factory=set)


class OkxWs(LiveFeed):
    """OKX's public websocket. `trade_interval` / `book_interval`: mean seconds between lively
    trades and between book changes per subscribed instrument (None or 0: none); they may be
    changed while running, and so may `idle_timeout`. `strict_channels=False` acknowledges
    unknown instruments (and sends nothing on them) instead of answering error 60018."""

    name = "okx"

    def __init__(self, clock: Callable[[], float] = time.time, pairs: Sequence[PairSpec] = PAIRS,
                 trade_interval: float | None = 0.2, book_interval: float | None = 0.2,
                 strict_channels: bool = True, seed: int | None = None, prefix: str = "/okx",
                 idle_timeout: float | None = IDLE_TIMEOUT) -> None:
        self.clock = clock
        self.markets = {spec.url_symbol: OkxMarket(spec, i) for i, spec in enumerate(pairs)}
        self.trade_interval = trade_interval
        self.book_interval = book_interval
        self.strict_channels = strict_channels
        self.prefix = prefix.rstrip("/")
        self.idle_timeout = idle_timeout
        self._init_feed(seed)
        self._ids = {inst: Ids(EPOCH_US) for inst in self.markets}   # trade ids per instrument

    def ws_routes(self) -> list[WsRoute]:
        # The first route is what Simulator.ws_url_for("okx") gives: OKX's own path.
        return [WsRoute(f"{self.prefix}/ws/v5/public", "public"), WsRoute(self.prefix, "public")]

    # -- what clients send ----------------------------------------------------------------------

    def on_open(self, session: WsSession) -> None:
        session.data["conn_id"] = f"{random.getrandbits(32):08x}"
        session.data["last_in"] = time.monotonic()
        session.data["books_synced"] = set()

    def on_message(self, session: WsSession, message: Frame) -> None:
        session.data["last_in"] = time.monotonic()
        try:
            text = message.decode() if isinstance(message, bytes) else message
        except UnicodeDecodeError:
            session.send(self._error("60012", "Invalid request: not text", session))
            return
        if text == "ping":
            session.send("pong")
            return
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        op = document.get("op") if isinstance(document, dict) else None
        args = document.get("args") if isinstance(document, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args \
                or not all(isinstance(arg, dict) for arg in args):
            session.send(self._error("60012", f"Illegal request: {text[:200]}", session))
            return
        for arg in args:
            kind, inst = arg.get("channel"), arg.get("instId")
            channel = f"{kind}:{inst}"
            if parse_channel(channel) is None or (self.strict_channels and inst not in self.markets):
                session.send(self._error("60018", f"channel:{kind},instId:{inst} doesn't exist",
                                         session))
                continue
            ack = dumps({"event": op, "arg": {"channel": kind, "instId": inst},
                         "connId": session.data.get("conn_id", "")})
            if kind == "books":   # a new subscription starts with a new snapshot
                session.data.setdefault("books_synced", set()).discard(inst)
            if op == "subscribe":
                session.send(ack)
                session.subscribe(channel)     # after the ack: no data before it
            else:
                session.unsubscribe(channel)   # before the ack: no data after it
                session.send(ack)
        self.wake()

    def _error(self, code: str, message: str, session: WsSession) -> str:
        return dumps({"event": "error", "msg": message, "code": code,
                      "connId": session.data.get("conn_id", "")})

    # -- fault hooks ----------------------------------------------------------------------------

    def reconnect_frame(self, session: WsSession) -> Frame:
        return dumps({"event": "notice", "msg": NOTICE_MESSAGE, "code": "64008",
                      "connId": session.data.get("conn_id", "")})

    def garbage_frames(self, session: WsSession, count: int) -> list[Frame]:
        """A trade frame cut short, a binary frame, JSON of an unknown event, a trade without
        its "px"; repeated to `count` frames. On an instrument the connection is subscribed to."""
        subscribed = [parse_channel(c) for c in session.channels()]
        inst = next((p[1] for p in subscribed if p and p[1] in self.markets), next(iter(self.markets)))
        market, now = self.markets[inst], self.clock()
        arg = {"channel": "trades", "instId": inst}
        broken = {"instId": inst, "tradeId": str(self._ids[inst].last + 1),
                  "sz": market.sz(round(market.spec.typical_amount * market.amount_scale)),
                  "side": "buy", "ts": str(math.floor(now * 1000)), "count": "1", "source": "0"}
        kinds: list[Frame] = [
            dumps({"arg": arg, "data": [{"instId": inst, "tradeId": "1"}]})[:60],   # cut short
            b"\x8b\x00\xffbinary frame\x00",
            dumps({"event": "sim-unknown", "msg": "", "code": "0",
                   "connId": session.data.get("conn_id", "")}),
            dumps({"arg": arg, "data": [broken]}),
        ]
        return [kinds[i % len(kinds)] for i in range(count)]

    # -- scripted trades ------------------------------------------------------------------------

    def script_trades(self, pair: str, count: int, interval: float = 0.005) -> list[int]:
        """Emit exactly `count` trades on trades:{pair} (pair = instId, e.g. "BTC-USDT"; see
        WsServer.run_script), in place of the lively ones while the script runs. Returns
        their tradeIds (as integers), in order."""
        return self._script(pair, count, interval, self.markets, "instrument", f"trades:{pair}")

    def blast_trades(self, pair: str, count: int) -> list[int]:
        """For throughput benchmarks: queue `count` trade frames at once on every connection
        subscribed to trades:{pair}, as fast as the socket takes them (no faults, no
        exactly-once bookkeeping: that is script_trades). Returns their tradeIds."""
        server = self._server_started()
        ids = self._take_ids(pair, count)
        frames = [self._scripted_trade(pair, i) for i in ids]   # built first: only sending is timed
        for session in server.subscribers(self.name, f"trades:{pair}"):
            for frame in frames:
                paced_send(session, frame)
        return ids

    def _ids_for(self, pair: str) -> Ids:
        return self._ids[pair]

    def _scripted_trade(self, inst: str, trade_id: int) -> str:
        with self._lock:
            now = self.clock()
            live = self._live_inst(inst, time.monotonic(), now)
            return dumps(self._trade(inst, live, trade_id, now))

    # -- lively data ----------------------------------------------------------------------------

    def _live_inst(self, inst: str, now_m: float, now: float) -> _LiveInst:
        live = self._live.get(inst)
        if live is None:
            market = self.markets[inst]
            live = self._live[inst] = _LiveInst(
                market, LiveBook(market, now, BOOK_DEPTH),
                next_trade=now_m + self._next_delay(self.trade_interval),
                next_book=now_m)   # a book at once
        return live

    def _stamp(self, live: _LiveInst, now: float) -> str:
        live.last_ms = max(live.last_ms, math.floor(now * 1000))
        return str(live.last_ms)

    def _trade(self, inst: str, live: _LiveInst, trade_id: int, now: float) -> dict[str, Any]:
        """A trade at the touch, taking liquidity from the level it hits (lock held)."""
        market = live.market
        buy, price, amount = self._hit_touch(market, live.book, now, spread=False)
        return {"arg": {"channel": "trades", "instId": inst},
                "data": [{"instId": inst, "tradeId": str(trade_id), "px": market.px(price),
                          "sz": market.sz(amount), "side": "buy" if buy else "sell",
                          "ts": self._stamp(live, now), "count": "1", "source": "0"}]}

    def _levels(self, market: OkxMarket, side: list[tuple[int, int]]) -> list[list[str]]:
        return [[market.px(p), market.sz(a), "0", num_orders(p)] for p, a in side]

    def _split_channel(self, channel: str) -> tuple[str, str] | None:
        parsed = parse_channel(channel)
        return (parsed[1], parsed[0]) if parsed and parsed[1] in self.markets else None

    def _feed(self, server: WsServer, wanted: dict[str, set[str]]) -> float:
        frames: list[tuple[str, str]] = []
        books: list[tuple[str, Any]] = []
        with self._lock:
            now_m, now = time.monotonic(), self.clock()
            self._drop_unwanted(wanted)
            wake_at = now_m + 1.0
            for inst, kinds in wanted.items():
                live = self._live_inst(inst, now_m, now)
                live.kinds = kinds
                frames += self._due_frames(inst, live, now_m, now, books)
                wake_at = min(wake_at, live.next_trade, live.next_book)
        for channel, frame in frames:
            server.broadcast(self.name, channel, frame)
        for inst, update in books:
            self._send_books(server, inst, update)
        self._close_idle(server)
        return wake_at

    def _due_frames(self, inst: str, live: _LiveInst, now_m: float, now: float,
                    books: list[tuple[str, Any]]) -> list[tuple[str, str]]:
        frames: list[tuple[str, str]] = []
        if not self.trade_interval:
            live.next_trade = math.inf
        elif now_m >= live.next_trade or live.next_trade == math.inf:
            scripted = self._server is not None and self._server.script_active(self.name, inst)
            if now_m >= live.next_trade and "trades" in live.kinds and not scripted:
                trade_id = self._ids[inst].take(1, now)[0]
                frames.append((f"trades:{inst}", dumps(self._trade(inst, live, trade_id, now))))
            live.next_trade = now_m + self._next_delay(self.trade_interval)
        if "tickers" in live.kinds and now_m >= live.next_book:
            frames.append((f"tickers:{inst}", dumps(self._ticker(inst, live, now))))
        if not self.book_interval:
            live.next_book = math.inf
        elif now_m >= live.next_book or live.next_book == math.inf:
            if now_m >= live.next_book:
                first = live.seq == 0
                live.book.step(now, self._rng)
                changed_bids, changed_asks = live.book.take_changes()
                prev_seq = live.seq
                live.seq = prev_seq + 1 if (first or changed_bids or changed_asks) else prev_seq
                bids, asks = live.book.top()
                market, ts = live.market, self._stamp(live, now)
                top5 = (bids[:5], asks[:5])
                if "books5" in live.kinds and top5 != live.last_top5:
                    frames.append((f"books5:{inst}", dumps({
                        "arg": {"channel": "books5", "instId": inst},
                        "data": [{"asks": self._levels(market, asks[:5]),
                                  "bids": self._levels(market, bids[:5]),
                                  "instId": inst, "ts": ts, "seqId": live.seq}]})))
                live.last_top5 = top5
                bbo = (bids[:1], asks[:1])
                if "bbo-tbt" in live.kinds and bbo != live.last_bbo:
                    frames.append((f"bbo-tbt:{inst}", dumps({
                        "arg": {"channel": "bbo-tbt", "instId": inst},
                        "data": [{"asks": self._levels(market, asks[:1]),
                                  "bids": self._levels(market, bids[:1]),
                                  "ts": ts, "seqId": live.seq}]})))
                live.last_bbo = bbo
                if "books" in live.kinds:
                    full_bids, full_asks = self._levels(market, bids), self._levels(market, asks)
                    books.append((inst, {
                        "ts": ts, "seq": live.seq, "prev_seq": prev_seq,
                        "bids": full_bids, "asks": full_asks,
                        "changed_bids": self._levels(market, changed_bids),
                        "changed_asks": self._levels(market, changed_asks),
                        "checksum": checksum(full_bids, full_asks)}))
            live.next_book = now_m + self._next_delay(self.book_interval)
        return frames

    def _send_books(self, server: WsServer, inst: str, update: dict[str, Any]) -> None:
        """The books channel: a snapshot to each connection new to it, the changes to the rest."""
        arg = {"channel": "books", "instId": inst}
        snapshot = dumps({"arg": arg, "action": "snapshot", "data": [{
            "asks": update["asks"], "bids": update["bids"], "ts": update["ts"],
            "checksum": update["checksum"], "prevSeqId": -1, "seqId": update["seq"]}]})
        changes = dumps({"arg": arg, "action": "update", "data": [{
            "asks": update["changed_asks"], "bids": update["changed_bids"], "ts": update["ts"],
            "checksum": update["checksum"], "prevSeqId": update["prev_seq"],
            "seqId": update["seq"]}]})
        for session in server.subscribers(self.name, f"books:{inst}"):
            synced = session.data.setdefault("books_synced", set())
            if inst not in synced:
                if session.send(snapshot):
                    synced.add(inst)
            else:
                session.send(changes)

    def _ticker(self, inst: str, live: _LiveInst, now: float) -> dict[str, Any]:
        market, bids_asks = live.market, live.book.top()
        bids, asks = bids_asks
        mid = market.mid_ticks(now)
        open_24 = round(market.mid_ticks(now - 86400))
        last = round(mid)
        return {"arg": {"channel": "tickers", "instId": inst}, "data": [{
            "instType": "SPOT", "instId": inst, "last": market.px(last), "lastSz": market.sz(1),
            "askPx": market.px(asks[0][0]) if asks else "", "askSz": market.sz(asks[0][1]) if asks else "",
            "bidPx": market.px(bids[0][0]) if bids else "", "bidSz": market.sz(bids[0][1]) if bids else "",
            "open24h": market.px(open_24), "high24h": market.px(max(last, open_24) + 1),
            "low24h": market.px(max(1, min(last, open_24) - 1)),
            "sodUtc0": market.px(round(market.mid_ticks(math.floor(now / 86400) * 86400))),
            "sodUtc8": market.px(round(market.mid_ticks(math.floor((now + 28800) / 86400) * 86400 - 28800))),
            "volCcy24h": market.quote(round(market.spec.typical_amount * 5000 * market.amount_scale), last),
            "vol24h": market.sz(round(market.spec.typical_amount * 5000 * market.amount_scale)),
            "ts": self._stamp(live, now)}]}

    def _close_idle(self, server: WsServer) -> None:
        """OKX closes connections on which nothing has moved for 30 s (a stalled server, being
        hung, closes nothing)."""
        timeout = self.idle_timeout
        if not timeout:
            return
        now = time.monotonic()
        for session in server.sessions(self.name):
            data = session.data
            if session.frames_sent != data.get("frames_seen"):
                data["frames_seen"], data["last_out"] = session.frames_sent, now
            if session.stalled or session.closing or data.get("idle_closed"):
                continue
            last = max(data.get("last_in", session.opened_at), data.get("last_out", session.opened_at))
            if now - last > timeout:
                data["idle_closed"] = True
                server.log(f"WS {session.path} #{session.serial} idle for {timeout:g} s: closing")
                threading.Thread(target=_close, args=(session,), daemon=True,
                                 name=f"sim-ws-okx-idle-{session.serial}").start()


def _close(session: WsSession) -> None:
    try:
        session.connection.close(IDLE_CLOSE_CODE, IDLE_CLOSE_REASON)
    except Exception:
        pass   # already gone


SIM_WS = OkxWs   # found by proj.sim.default_ws_exchanges()
