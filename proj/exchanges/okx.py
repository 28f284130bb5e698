"""OKX: REST API v5 public market data (https://www.okx.com/docs-v5/en/#order-book-trading-market-data)
and the public websocket (wss://ws.okx.com:8443/ws/v5/public).

Instruments are BASE-QUOTE (BTC-USDT); only spot instruments map to BASE/QUOTE symbols
(BTC-USDT-SWAP and other derivatives are refused). Every value is a string, times are unix
milliseconds as strings. Every REST answer is the envelope {"code": "0", "msg": "", "data": [...]};
any other code is an error, also inside HTTP 200 (51001 "Instrument ID doesn't exist"), and the
404 page of an unknown /api/v5 path carries a NUMERIC code. 50011 (HTTP 429, "Rate limit
reached") and 50061 (sub-account rate limit) mean "too many requests".

REST: books (levels [px, sz, "0", numOrders], `sz` levels per side, default 1, max 400),
trades (newest first, `limit` max 500; `side` is the taker's), ticker (24 h rolling window;
vol24h in base, volCcy24h in quote currency for spot), candles (newest first, 9-element rows
[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]; `limit` max 300; bars 6H and longer open
at Hong Kong midnight unless suffixed "utc", so the UTC bars are used here).

Websocket: {"op": "subscribe", "args": [{"channel": "trades", "instId": "BTC-USDT"}, ...]} is
acknowledged per argument with {"event": "subscribe", "arg": {...}}; refusals are
{"event": "error", "code": "60018", "msg": ...}; {"event": "notice", "code": "64008"} announces
that the server will close the connection (service upgrade): reconnect. Data frames are
{"arg": {...}, "data": [...]}: trades, and books5 (a 5-level snapshot on every change, with
seqId). The full `books` channel sends one snapshot, then incremental updates: only its snapshot
frames are records. Keepalive is the TEXT "ping", answered by the text "pong" (not JSON); the
server drops a connection that has been quiet for 30 s.
"""
from __future__ import annotations

import re
from operator import itemgetter

import orjson

from ..records import (CollectorError, bad_schema, canon_decimal, canon_optional_amount,
                       canon_levels, canon_optional_price, canon_price, to_ms)
from .base import Exchange

MAX_BOOK_LEVELS = 400       # GET /api/v5/market/books: sz up to 400
MAX_TRADES = 500            # GET /api/v5/market/trades: limit up to 500
MAX_CANDLES = 300           # GET /api/v5/market/candles: limit up to 300
RATE_LIMIT_CODES = frozenset({"50011", "50061"})


class Okx(Exchange):
    name = "okx"
    rest_url = "https://www.okx.com"
    # 1m..4H are the same in every time zone; 6H and longer: the UTC-opening variants.
    timeframes = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m",
                  "1h": "1H", "2h": "2H", "4h": "4H", "6h": "6Hutc", "12h": "12Hutc",
                  "1d": "1Dutc", "1w": "1Wutc"}
    # Public market data is limited per IP and per endpoint, over 2 s windows: books 40,
    # candles 40, ticker 20, trades 100. One shared budget of 40 per 2 s in which a ticker costs
    # 2 never exceeds any of them, whatever the mix of requests.
    rate_limit = (40, 2)
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    ws_types = ("trades", "order_book")
    ws_heartbeat_interval = 20.0   # "ping" well inside the server's 30 s idle limit

    def to_exchange_symbol(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        return f"{base}-{quote}".upper()

    def from_exchange_symbol(self, market: str) -> str:
        parts = str(market).upper().split("-")
        if len(parts) != 2 or not all(parts):
            raise bad_schema(f"not an OKX spot instrument: {market!r}")
        return f"{parts[0]}/{parts[1]}"

    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        inst = self.to_exchange_symbol(symbol)
        if kind == "order_book":
            return "/api/v5/market/books", {"instId": inst,
                                            "sz": min(limit or MAX_BOOK_LEVELS, MAX_BOOK_LEVELS)}
        if kind == "trades":
            return "/api/v5/market/trades", {"instId": inst,
                                             "limit": min(limit or MAX_TRADES, MAX_TRADES)}
        if kind == "ticker":
            return "/api/v5/market/ticker", {"instId": inst}
        if kind == "candles":
            bar = self.exchange_timeframe(timeframe)
            return "/api/v5/market/candles", {"instId": inst, "bar": bar,
                                              "limit": min(limit or 100, MAX_CANDLES)}
        raise CollectorError("unsupported", f"okx has no {kind!r}")

    def request_weight(self, kind, limit=None):
        return 2 if kind == "ticker" else 1

    def error_reason(self, doc):
        if not isinstance(doc, dict) or "code" not in doc:
            return None
        code = doc["code"]
        if str(code) == "0":
            return None
        message = doc.get("msg") or doc.get("error_message") or ""
        return f"{message} ({code})" if message else f"OKX error code {code}"

    def is_rate_limit_error(self, doc):
        return isinstance(doc, dict) and str(doc.get("code")) in RATE_LIMIT_CODES

    # ---- REST ---------------------------------------------------------------------------
    def parse_order_book(self, doc, symbol, received, limit):
        return self._book(_only(doc["data"]), symbol, received, limit)

    def _book(self, data, symbol, received, limit=None):
        bids, asks = data["bids"], data["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        seq = data.get("seqId")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise bad_schema(f"okx seqId is not an integer: {seq!r:.40}")
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(data["ts"]), "received": received, "nonce": seq,
            "bids": canon_levels(bids, _PRICE_OF, _SIZE_OF),
            "asks": canon_levels(asks, _PRICE_OF, _SIZE_OF),
        }

    def parse_trades(self, doc, symbol, received, limit):
        rows = doc["data"]
        if not isinstance(rows, list):
            raise bad_schema("okx trades: expected a list")
        trades = [self._trade(t, symbol, received) for t in rows]
        # OKX lists newest first; records go oldest first (ties: by trade id)
        trades.sort(key=lambda t: (t["timestamp"], len(t["id"]), t["id"]))
        return trades[-limit:] if limit else trades

    def _trade(self, t, symbol, received):
        side = t["side"]
        if side not in ("buy", "sell"):
            raise bad_schema(f"okx trade side {side!r}")
        return {
            "type": "trade", "exchange": self.name, "symbol": symbol,
            "id": _trade_id(t["tradeId"]), "timestamp": to_ms(t["ts"]), "received": received,
            "side": side, "price": canon_price(t["px"]), "amount": canon_decimal(t["sz"]),
        }

    def parse_ticker(self, doc, symbol, received):
        t = _only(doc["data"])
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(t["ts"]), "received": received,
            "bid": canon_optional_price(t["bidPx"]), "ask": canon_optional_price(t["askPx"]),
            "last": canon_optional_price(t["last"]), "open": canon_optional_price(t["open24h"]),
            "high": canon_optional_price(t["high24h"]), "low": canon_optional_price(t["low24h"]),
            # spot: vol24h is in the base currency, volCcy24h in the quote currency
            "volume": canon_optional_amount(t["vol24h"]),
            "quote_volume": canon_optional_amount(t["volCcy24h"]),
            "vwap": None,
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        rows = doc["data"]
        if not isinstance(rows, list):
            raise bad_schema("okx candles: expected a list")
        candles = []
        for row in rows:
            if not isinstance(row, list) or len(row) < 6:
                raise bad_schema(f"okx candle row: expected [ts, o, h, l, c, vol, ...], got {row!r:.80}")
            candles.append({
                "type": "candle", "exchange": self.name, "symbol": symbol,
                "timeframe": timeframe, "timestamp": to_ms(row[0]), "received": received,
                "open": canon_price(row[1]), "high": canon_price(row[2]),
                "low": canon_price(row[3]), "close": canon_price(row[4]),
                "volume": canon_decimal(row[5]),   # spot: base currency
                "trades": None,
            })
        candles.sort(key=lambda c: c["timestamp"])   # OKX lists newest first
        for before, after in zip(candles, candles[1:]):
            if before["timestamp"] == after["timestamp"]:
                raise bad_schema(f"okx candles: two candles open at {after['timestamp']}")
        return candles[-limit:] if limit else candles

    # ---- websocket ----------------------------------------------------------------------
    def ws_channels(self, symbols, types):
        return [f"{_WS_CHANNELS[kind]}:{self.to_exchange_symbol(symbol)}"
                for kind in types for symbol in symbols]

    def ws_subscribe_messages(self, symbols, types):
        args = []
        for channel in self.ws_channels(symbols, types):
            name, _, inst = channel.partition(":")
            args.append({"channel": name, "instId": inst})
        # one request for all of them (OKX counts subscribe requests: 480 an hour), unless it
        # would pass the documented 64 KB limit of one request
        return [orjson.dumps({"op": "subscribe", "args": args[i:i + _ARGS_PER_MESSAGE]}).decode()
                for i in range(0, len(args), _ARGS_PER_MESSAGE)]

    def ws_heartbeat_message(self):
        return "ping"

    def ws_classify(self, text):
        # A few regexes on the head of the frame, not a parse: "event" and "arg" come first in
        # every OKX frame, and data payloads carry no "event" of their own.
        if text == "pong":
            return "heartbeat", ""
        head = text[:_HEAD]
        event = _EVENT_RE.search(head)
        if event is None and '"arg"' not in head:
            event = _EVENT_RE.search(text)
        channel, inst = _CHANNEL_RE.search(head), _INST_RE.search(head)
        name = f"{channel.group(1)}:{inst.group(1)}" if channel and inst else ""
        if event is not None:
            return _WS_EVENTS.get(event.group(1), "unknown"), name
        if name and '"data"' in text:
            return "data", name
        return "unknown", name

    def parse_ws_doc(self, doc, received):
        arg, rows = doc["arg"], doc["data"]
        channel = arg["channel"]
        symbol = self.unified_symbol(arg["instId"])
        if not isinstance(rows, list):
            raise bad_schema("okx websocket data: expected a list")
        if channel == "trades":
            return [self._trade(t, symbol, received) for t in rows]
        if channel in _SNAPSHOT_CHANNELS or (channel in _DIFF_CHANNELS
                                             and doc.get("action") == "snapshot"):
            return [self._book(data, symbol, received) for data in rows]
        if channel in _DIFF_CHANNELS:
            raise CollectorError("unsupported", f"okx {channel} {doc.get('action')!r} frames are "
                                 "incremental updates, not order book snapshots")
        raise bad_schema(f"unexpected okx frame on channel {channel!r}")


def _only(rows) -> dict:
    """The one object of a data list that holds exactly one."""
    if not isinstance(rows, list) or len(rows) != 1 or not isinstance(rows[0], dict):
        raise bad_schema(f"okx: expected data to be a list of one object, got {rows!r:.80}")
    return rows[0]


def _trade_id(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise bad_schema(f"okx tradeId {value!r:.40}")
    return str(value)


_PRICE_OF, _SIZE_OF = itemgetter(0), itemgetter(1)   # levels: [px, sz, "0", orders]
_WS_CHANNELS = {"trades": "trades", "order_book": "books5"}
_SNAPSHOT_CHANNELS = frozenset({"books5", "bbo-tbt"})            # every frame a snapshot
_DIFF_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt", "books-elp"})
_WS_EVENTS = {"subscribe": "ack", "unsubscribe": "ack", "login": "ack",
              "channel-conn-count": "ack", "error": "error", "channel-conn-count-error": "error",
              "notice": "reconnect"}
_ARGS_PER_MESSAGE = 500
_HEAD = 256
_EVENT_RE = re.compile(r'"event"\s*:\s*"([^"]*)"')
_CHANNEL_RE = re.compile(r'"channel"\s*:\s*"([^"]*)"')
_INST_RE = re.compile(r'"instId"\s*:\s*"([^"]*)"')

EXCHANGE = Okx()
