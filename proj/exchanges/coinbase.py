"""Coinbase Advanced Trade: public REST market data (https://api.coinbase.com/api/v3/brokerage/
market/..., no authentication) and the market-data websocket (wss://advanced-trade-ws.coinbase.com).

Products are BASE-QUOTE (BTC-USD). Every number is a string; Coinbase writes them without
trailing zeros ("68923", "0.058"). Times are RFC 3339 with up to nine fraction digits
("2026-08-09T21:05:48.228568804Z"), candle starts unix seconds as strings.

REST (docs: api-reference/advanced-trade-api/rest-api/public/*):
- order_book  GET /market/product_book?product_id=&limit=   {"pricebook": {"bids": [{price,
  size}], "asks": [...], "time"}, "last", "mid_market", ...}; no sequence number (nonce null).
- trades      GET /market/products/{id}/ticker?limit=       {"trades": [...], "best_bid",
  "best_ask"}, newest first. A trade's `side` is the MAKER's side (fixtures/coinbase/
  rest_at_market_trades_btcusd.json: trades at the best ask are "SELL"), so it is flipped.
- ticker      GET /market/products/{id}                     the product: price, volume_24h,
  high_24h/low_24h (newer answers), approximate_quote_24h_volume, best_bid_price/
  best_ask_price (empty in every recording). No open, vwap or time: those are null.
- candles     GET /market/products/{id}/candles?start=&end=&granularity=&limit=  newest first,
  start/end required (unix seconds), at most 350 candles a request.
Errors: {"error": "NOT_FOUND", "error_details": ..., "message": ...} with any HTTP status
(fixtures/coinbase/rest_at_error_404_invalid_product.json). Public endpoints: 10 requests per
second per IP (Advanced Trade REST rate limits; the Exchange API documents the same 10/s with
bursts of 15); a 429 may come with an HTML body.

Websocket: one subscribe message per channel ({"type": "subscribe", "product_ids": [...],
"channel": "market_trades"}); frames are {"channel", "timestamp", "sequence_num", "events"}.
- market_trades: events "snapshot" (recent trades, on subscribing) and "update" both carry
  trades; `side` is again the maker side (fixtures ws_at_market_trades_*.json; in the recorded
  sequence a sweep down the bids is a run of "BUY" trades at falling prices), flipped here.
- ticker: one ticker per match: price and 24 h volume/high/low, best bid/ask.
- level2 (frames on channel "l2_data"): one "snapshot" event of the whole book per product on
  subscribing, then "update" events of changed levels. Only snapshots become order_book records;
  updates are not records, so they are classified "heartbeat" (alive, never shipped) and the
  level2 channel is left out of the silence watch (its snapshot comes once per subscription).
- heartbeats: a frame a second that keeps quiet channels open (they close after 60-90 s
  without updates otherwise); subscribed always, never data. "subscriptions" frames are the
  acknowledgement; {"type": "error", "message": ...} is an error. There is no application-level
  ping and no "please reconnect" frame.
"""
from __future__ import annotations

import re
import time
from datetime import date
from functools import lru_cache
from itertools import compress, repeat
from operator import eq, itemgetter

import orjson

from ..records import (CollectorError, bad_schema, canon_decimal, canon_optional_amount,
                       canon_column, canon_levels, canon_optional_price, canon_price, to_ms)
from .base import Exchange

API = "/api/v3/brokerage/market"
_GRANULARITY_SECONDS = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900,
                        "THIRTY_MINUTE": 1800, "ONE_HOUR": 3600, "TWO_HOUR": 7200,
                        "SIX_HOUR": 21600, "ONE_DAY": 86400}


class Coinbase(Exchange):
    name = "coinbase"
    rest_url = "https://api.coinbase.com"
    timeframes = {"1m": "ONE_MINUTE", "5m": "FIVE_MINUTE", "15m": "FIFTEEN_MINUTE",
                  "30m": "THIRTY_MINUTE", "1h": "ONE_HOUR", "2h": "TWO_HOUR", "6h": "SIX_HOUR",
                  "1d": "ONE_DAY"}
    max_candles = 350          # per request (more is refused with INVALID_ARGUMENT)
    max_trades = 1000
    default_trades = 100       # `limit` is required by the trades endpoint
    default_candles = 300
    rate_limit = (10, 1.0)     # public endpoints: 10 requests per second per IP
    ws_url = "wss://advanced-trade-ws.coinbase.com"
    ws_types = ("trades", "order_book", "ticker")
    ws_heartbeat_interval = None   # the server sends heartbeats; the client sends nothing

    def __init__(self, clock=time.time) -> None:
        self.clock = clock     # candles need a time window ending now

    # ---- symbols ------------------------------------------------------------------------
    def to_exchange_symbol(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        return f"{base}-{quote}"

    def from_exchange_symbol(self, market: str) -> str:
        base, sep, quote = market.partition("-")
        if not sep or not base or not quote or "-" in quote:
            raise bad_schema(f"unknown Coinbase product {market!r}")
        return f"{base}/{quote}".upper()

    # ---- REST ---------------------------------------------------------------------------
    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        product = self.to_exchange_symbol(symbol)
        if kind == "order_book":
            return f"{API}/product_book", ({"product_id": product, "limit": limit} if limit
                                           else {"product_id": product})
        if kind == "trades":
            return (f"{API}/products/{product}/ticker",
                    {"limit": min(limit or self.default_trades, self.max_trades)})
        if kind == "ticker":
            return f"{API}/products/{product}", {}
        if kind == "candles":
            granularity = self.exchange_timeframe(timeframe)
            step = _GRANULARITY_SECONDS[granularity]
            count = min(limit or self.default_candles, self.max_candles)
            now = int(self.clock())
            current = now - now % step           # the running candle's start
            return f"{API}/products/{product}/candles", {
                "start": str(current - (count - 1) * step), "end": str(now),
                "granularity": granularity, "limit": count}
        raise CollectorError("unsupported", f"coinbase has no {kind!r}")

    def error_reason(self, doc):
        if not isinstance(doc, dict):
            return None
        error = doc.get("error")
        if isinstance(error, str) and error:
            message = doc.get("message") or doc.get("error_details") or ""
            return f"{message} ({error})" if message and message != error else error
        errors = doc.get("errors")   # the older v2 shape: {"errors": [{"id", "message"}]}
        if isinstance(errors, list) and errors:
            return "; ".join(f"{e.get('message', '')} ({e.get('id', '')})" if isinstance(e, dict)
                             else str(e) for e in errors)
        if isinstance(doc.get("message"), str) and set(doc) <= _MESSAGE_ONLY:
            return doc["message"]    # Exchange API style: {"message": "..."}
        return None

    def is_rate_limit_error(self, doc):
        text = " ".join(str(doc.get(key, "")) for key in ("error", "message", "error_details",
                                                          "errors")).lower()
        return "rate_limit" in text or "rate limit" in text or "too many requests" in text

    def parse_order_book(self, doc, symbol, received, limit):
        book = doc["pricebook"]
        bids, asks = book["bids"], book["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        stamp = book.get("time")
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": iso_ms(stamp) if stamp else None, "received": received, "nonce": None,
            "bids": canon_levels(bids, _PRICE, _SIZE), "asks": canon_levels(asks, _PRICE, _SIZE),
        }

    def parse_trades(self, doc, symbol, received, limit):
        trades = doc["trades"]
        if not isinstance(trades, list):
            raise bad_schema("coinbase market trades: expected a list")
        records = [self._trade(t, symbol, received) for t in reversed(trades)]  # newest first
        records.sort(key=_timestamp)   # stable: ties keep the exchange's order
        return records[-limit:] if limit else records

    def parse_ticker(self, doc, symbol, received):
        if not isinstance(doc, dict) or "product_id" not in doc:
            raise bad_schema("coinbase product: expected a product object")
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": None, "received": received,    # the product carries no time
            "bid": canon_optional_price(doc.get("best_bid_price")),
            "ask": canon_optional_price(doc.get("best_ask_price")),
            "last": canon_optional_price(doc.get("price")),
            "open": None,    # only price_percentage_change_24h: an open would be computed
            "high": canon_optional_price(doc.get("high_24h")),
            "low": canon_optional_price(doc.get("low_24h")),
            "volume": canon_optional_amount(doc.get("volume_24h")),
            "quote_volume": canon_optional_amount(doc.get("approximate_quote_24h_volume")),
            "vwap": None,
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        rows = doc["candles"]
        if not isinstance(rows, list):
            raise bad_schema("coinbase candles: expected a list")
        candles = [{
            "type": "candle", "exchange": self.name, "symbol": symbol, "timeframe": timeframe,
            "timestamp": to_ms(c["start"], scale=1), "received": received,
            "open": canon_price(c["open"]), "high": canon_price(c["high"]),
            "low": canon_price(c["low"]), "close": canon_price(c["close"]),
            "volume": canon_decimal(c["volume"]), "trades": None,
        } for c in rows]
        candles.sort(key=_timestamp)   # Coinbase lists newest first
        return candles[-limit:] if limit else candles

    def _trade(self, t: dict, symbol: str, received: int) -> dict:
        return {
            "type": "trade", "exchange": self.name, "symbol": symbol,
            "id": str(t["trade_id"]), "timestamp": iso_ms(t["time"]), "received": received,
            "side": _TAKER_SIDE.get(t["side"]),
            "price": canon_price(t["price"]), "amount": canon_decimal(t["size"]),
        }

    # ---- websocket ----------------------------------------------------------------------
    def ws_channels(self, symbols, types):
        """Channels watched for silence, per product. After level2's one snapshot only
        updates come: they make no records but keep the channel alive (ws_classify)."""
        self._check_ws_types(types)
        return [f"{_WS_CHANNELS[kind]}:{self.to_exchange_symbol(symbol)}"
                for kind in types for symbol in symbols]

    def ws_subscribe_messages(self, symbols, types):
        self._check_ws_types(types)
        products = [self.to_exchange_symbol(symbol) for symbol in symbols]
        channels = ["heartbeats"] + [_WS_SUBSCRIBE[kind] for kind in dict.fromkeys(types)]
        return [orjson.dumps({"type": "subscribe", "product_ids": products,
                              "channel": channel}).decode() for channel in channels]

    def ws_classify(self, text):
        # Regexes over the head of the frame, no parse: the envelope's "channel" comes first,
        # and the first "product_id" / "type" after it belong to the first event.
        channel = _CHANNEL_RE.search(text)
        if channel is None:
            return ("error" if _ERROR_RE.search(text) else "unknown"), ""
        name = channel.group(1)
        if name in ("market_trades", "ticker", "ticker_batch"):
            product = _PRODUCT_RE.search(text)
            return "data", f"{_WS_KEYS[name]}:{product.group(1) if product else ''}"
        if name == "l2_data":
            product, event = _PRODUCT_RE.search(text), _EVENT_TYPE_RE.search(text)
            what = "data" if event and event.group(1) == "snapshot" else "alive"
            return what, f"l2_data:{product.group(1) if product else ''}"
        if name == "heartbeats":
            return "heartbeat", "heartbeats"
        if name == "subscriptions":
            subscribed = _SUBSCRIPTIONS_RE.search(text)
            return "ack", subscribed.group(1) if subscribed else "subscriptions"
        return "unknown", name

    def parse_ws_doc(self, doc, received):
        if "channel" not in doc and doc.get("type") == "error":
            raise CollectorError("exchange_error", str(doc.get("message") or doc))
        channel, events = doc["channel"], doc["events"]
        records = []
        if channel == "market_trades":
            for event in events:      # "snapshot" (recent trades) and "update" alike
                trades = [self._trade(t, self.unified_symbol(t["product_id"]), received)
                          for t in reversed(event["trades"])]   # newest first
                records += trades
        elif channel in ("ticker", "ticker_batch"):
            stamp = iso_ms(doc["timestamp"])
            for event in events:
                records += [self._ws_ticker(t, stamp, received) for t in event["tickers"]]
        elif channel == "l2_data":
            for event in events:
                if event["type"] == "snapshot":
                    records.append(self._ws_book(event, doc, received))
        else:
            raise bad_schema(f"unexpected coinbase frame on channel {channel!r}")
        return records

    def _ws_ticker(self, t: dict, stamp: int, received: int) -> dict:
        return {
            "type": "ticker", "exchange": self.name,
            "symbol": self.unified_symbol(t["product_id"]),
            "timestamp": stamp, "received": received,
            "bid": canon_optional_price(t.get("best_bid")),
            "ask": canon_optional_price(t.get("best_ask")),
            "last": canon_optional_price(t["price"]), "open": None,
            "high": canon_optional_price(t.get("high_24_h")),
            "low": canon_optional_price(t.get("low_24_h")),
            "volume": canon_optional_amount(t.get("volume_24_h")),
            "quote_volume": None, "vwap": None,
        }

    def _ws_book(self, event: dict, doc: dict, received: int) -> dict:
        sides = _ws_book_sides(event["updates"])
        if sides is None:    # what the fast path does not vouch for: level by level
            sides = bids, asks = [], []
            for level in event["updates"]:
                side = level["side"]
                row = [canon_price(level["price_level"]), canon_decimal(level["new_quantity"])]
                if side == "bid":
                    bids.append(row)
                elif side == "offer":
                    asks.append(row)
                else:
                    raise bad_schema(f"coinbase level2: unknown side {side!r}")
        bids, asks = sides
        updates = event["updates"]
        stamp = updates[0]["event_time"] if updates else doc["timestamp"]
        return {
            "type": "order_book", "exchange": self.name,
            "symbol": self.unified_symbol(event["product_id"]),
            "timestamp": iso_ms(stamp), "received": received,
            "nonce": _sequence(doc["sequence_num"]),   # the connection's message sequence
            "bids": bids, "asks": asks,
        }

    def _check_ws_types(self, types) -> None:
        for kind in types:
            if kind not in self.ws_types:
                raise CollectorError("unsupported", f"coinbase streams no {kind!r} "
                                     f"(it streams {', '.join(self.ws_types)})")


# ---- helpers -------------------------------------------------------------------------------

_PRICE, _SIZE = itemgetter("price"), itemgetter("size")   # REST book levels
_SIDE, _PRICE_LEVEL, _NEW_QUANTITY = (itemgetter("side"), itemgetter("price_level"),
                                     itemgetter("new_quantity"))   # level2 updates
_TAKER_SIDE = {"SELL": "buy", "BUY": "sell"}   # the exchange names the maker's side
_WS_CHANNELS = {"trades": "market_trades", "ticker": "ticker", "order_book": "l2_data"}
_WS_SUBSCRIBE = {"trades": "market_trades", "ticker": "ticker", "order_book": "level2"}
_WS_KEYS = {"market_trades": "market_trades", "ticker": "ticker", "ticker_batch": "ticker"}
_MESSAGE_ONLY = {"message", "type", "reason", "error_details"}
_CHANNEL_RE = re.compile(r'"channel"\s*:\s*"([^"]*)"')
_PRODUCT_RE = re.compile(r'"product_id"\s*:\s*"([^"]*)"')
_EVENT_TYPE_RE = re.compile(r'"type"\s*:\s*"([^"]*)"')
_ERROR_RE = re.compile(r'"type"\s*:\s*"error"')
_SUBSCRIPTIONS_RE = re.compile(r'"subscriptions"\s*:\s*(\{[^}]*\})')
_ISO_RE = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z")
_ISO_SECOND_RE = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _ws_book_sides(updates) -> tuple | None:
    """(bids, asks) of a level2 snapshot's updates, whole columns at a time, or None when
    this fast path cannot vouch for them (Coinbase lists all bids, then all offers)."""
    try:
        sides = list(map(_SIDE, updates))
        prices, amounts = list(map(_PRICE_LEVEL, updates)), list(map(_NEW_QUANTITY, updates))
    except (LookupError, TypeError):
        return None
    bid_count = sides.count("bid")
    if bid_count + sides.count("offer") != len(sides):
        return None     # an unknown side: the level-by-level path names it
    prices, amounts = canon_column(prices, True), canon_column(amounts)
    if prices is None or amounts is None:
        return None
    rows = [[price, amount] for price, amount in zip(prices, amounts)]
    if bid_count == len(sides) or sides.index("offer") == bid_count:
        return rows[:bid_count], rows[bid_count:]
    return (list(compress(rows, map(eq, sides, repeat("bid")))),
            list(compress(rows, map(eq, sides, repeat("offer")))))


def _timestamp(record: dict) -> int:
    return record["timestamp"]


@lru_cache(maxsize=4096)
def _day_ms(day: str) -> int:
    return (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL) * 86_400_000


@lru_cache(maxsize=4096)
def _second_ms(prefix: str) -> int | None:
    """'2026-08-09T21:05:48' -> its milliseconds; None for anything else (iso_ms's full path
    then says what is wrong). Remembered: a stream's times share few whole seconds."""
    match = _ISO_SECOND_RE.fullmatch(prefix)
    if match is None or not prefix.isascii():
        return None
    day, hours, minutes, seconds = match.groups()
    hours, minutes, seconds = int(hours), int(minutes), int(seconds)
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    try:
        return _day_ms(day) + ((hours * 60 + minutes) * 60 + seconds) * 1000
    except ValueError:
        return None


def iso_ms(text) -> int:
    """'2026-08-09T21:05:48.228568804Z' -> 1786309548228 (milliseconds, fraction cut)."""
    if type(text) is str and len(text) >= 20 and text[-1] == "Z":   # the usual form, quickly
        second = _second_ms(text[:19])
        if second is not None:
            if len(text) == 20:
                return to_ms(second, scale=1000)
            fraction = text[20:-1]
            if text[19] == "." and fraction.isascii() and fraction.isdigit():
                return to_ms(second + int(fraction[:3].ljust(3, "0")), scale=1000)
    match = _ISO_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad_schema(f"not an RFC 3339 UTC time: {text!r:.40}")
    day, hours, minutes, seconds, fraction = match.groups()
    hours, minutes, seconds = int(hours), int(minutes), int(seconds)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise bad_schema(f"not a time of day: {text!r:.40}")
    ms = (_day_ms(day) + ((hours * 60 + minutes) * 60 + seconds) * 1000
          + (int(fraction[:3].ljust(3, "0")) if fraction else 0))
    return to_ms(ms, scale=1000)


EXCHANGE = Coinbase()


def _sequence(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_schema(f"coinbase: bad sequence_num {value!r:.40}")
    return value
