"""Bitstamp: REST v2 public market data (https://www.bitstamp.net/api/) and websocket v2
(https://www.bitstamp.net/websocket/v2/).

Markets are lowercase concatenations (btcusd); REST values are all strings, times in unix
seconds except the order book's `microtimestamp`. Errors come as
{"status": "error", "reason": ...}, sometimes with HTTP 200.
Websocket: channels live_trades_{pair} (trades carry float `price`/`amount` beside the exact
`price_str`/`amount_str`: only the strings are used) and order_book_{pair} (a top-100
snapshot on every change). The client may send bts:heartbeat; the server may send
bts:request_reconnect, after which it closes the connection (connections also end at 90 days).
"""
from __future__ import annotations

import re

import orjson

from ..records import (CollectorError, bad_schema, canon_decimal, canon_optional_amount,
                       canon_optional_price, canon_pair_levels, canon_price, to_ms)
from .base import Exchange

# Quote currencies Bitstamp lists, longest first so that "usdt" wins over "usd".
_QUOTES = ("pyusd", "rlusd", "usdt", "usdc", "eurc", "usd", "eur", "gbp", "btc", "eth", "pax")


class Bitstamp(Exchange):
    name = "bitstamp"
    rest_url = "https://www.bitstamp.net"
    timeframes = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
                  "2h": 7200, "4h": 14400, "6h": 21600, "12h": 43200, "1d": 86400}
    max_candles = 1000
    # "8000 requests per 10 minutes" (and 400 per second) per the API docs: the same average
    # over 10 s windows, which keeps the shared window small
    rate_limit = (130, 10)
    ws_url = "wss://ws.bitstamp.net"
    ws_types = ("trades", "order_book")
    ws_heartbeat_interval = 10.0

    def to_exchange_symbol(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        return f"{base}{quote}".lower()

    def from_exchange_symbol(self, market: str) -> str:
        market = market.lower()
        for quote in _QUOTES:
            if market.endswith(quote) and len(market) > len(quote):
                return f"{market[:-len(quote)]}/{quote}".upper()
        raise bad_schema(f"unknown Bitstamp market {market!r}")

    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        pair = self.to_exchange_symbol(symbol)
        if kind == "order_book":
            return f"/api/v2/order_book/{pair}/", {}
        if kind == "trades":
            return f"/api/v2/transactions/{pair}/", {"time": "hour"}
        if kind == "ticker":
            return f"/api/v2/ticker/{pair}/", {}
        if kind == "candles":
            step = self.exchange_timeframe(timeframe)
            return f"/api/v2/ohlc/{pair}/", {"step": step,
                                              "limit": min(limit or 100, self.max_candles)}
        raise CollectorError("unsupported", f"bitstamp has no {kind!r}")

    def error_reason(self, doc):
        if isinstance(doc, dict) and doc.get("status") == "error":
            reason = doc.get("reason")
            if isinstance(reason, dict):  # older style: {"__all__": ["..."]}
                reason = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                   for k, v in reason.items())
            code = doc.get("response_code") or doc.get("code")
            return f"{reason} ({code})" if code else str(reason)
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and "data" not in doc:
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                             for e in doc["errors"])
        return None

    def parse_order_book(self, doc, symbol, received, limit):
        return self._book(doc, symbol, received, limit)

    def _book(self, doc, symbol, received, limit=None):
        bids, asks = doc["bids"], doc["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(doc["microtimestamp"], scale=1_000_000),
            "received": received, "nonce": None,
            "bids": canon_pair_levels(bids), "asks": canon_pair_levels(asks),
        }

    def parse_trades(self, doc, symbol, received, limit):
        if not isinstance(doc, list):
            raise bad_schema("bitstamp transactions: expected a list")
        trades = [{
            "type": "trade", "exchange": self.name, "symbol": symbol,
            "id": str(t["tid"]), "timestamp": to_ms(t["date"], scale=1),
            "received": received, "side": _SIDES[str(t["type"])],
            "price": canon_price(t["price"]), "amount": canon_decimal(t["amount"]),
        } for t in doc]
        trades.reverse()  # Bitstamp lists newest first; records go oldest first
        return trades[-limit:] if limit else trades

    def parse_ticker(self, doc, symbol, received):
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(doc["timestamp"], scale=1), "received": received,
            "bid": canon_optional_price(doc["bid"]), "ask": canon_optional_price(doc["ask"]),
            "last": canon_optional_price(doc["last"]),
            # `open` is the day's first price; the 24 h window's open is open_24
            "open": canon_optional_price(doc.get("open_24", doc["open"])),
            "high": canon_optional_price(doc["high"]), "low": canon_optional_price(doc["low"]),
            "volume": canon_optional_amount(doc["volume"]), "quote_volume": None,
            "vwap": canon_optional_price(doc["vwap"]),
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        rows = doc["data"]["ohlc"]
        if not isinstance(rows, list):
            raise bad_schema("bitstamp ohlc: expected a list")
        candles = [{
            "type": "candle", "exchange": self.name, "symbol": symbol, "timeframe": timeframe,
            "timestamp": to_ms(c["timestamp"], scale=1), "received": received,
            "open": canon_price(c["open"]), "high": canon_price(c["high"]),
            "low": canon_price(c["low"]), "close": canon_price(c["close"]),
            "volume": canon_decimal(c["volume"]), "trades": None,
        } for c in rows]
        candles.sort(key=lambda c: c["timestamp"])
        return candles[-limit:] if limit else candles

    # ---- websocket ----------------------------------------------------------------------
    def ws_channels(self, symbols, types):
        return [_WS_CHANNELS[kind] + self.to_exchange_symbol(symbol)
                for kind in types for symbol in symbols]

    def ws_subscribe_messages(self, symbols, types):
        return [orjson.dumps({"event": "bts:subscribe", "data": {"channel": channel}}).decode()
                for channel in self.ws_channels(symbols, types)]

    def ws_heartbeat_message(self):
        return '{"event":"bts:heartbeat"}'

    def ws_classify(self, text):
        # A regex, not a parse: data payloads hold no "event" or "channel" keys of their own.
        event, channel = _EVENT_RE.search(text), _CHANNEL_RE.search(text)
        return (_WS_EVENTS.get(event.group(1), "unknown") if event else "unknown",
                channel.group(1) if channel else "")

    def parse_ws_doc(self, doc, received):
        channel, event, data = doc["channel"], doc["event"], doc["data"]
        if event == "trade" and channel.startswith(_WS_CHANNELS["trades"]):
            symbol = self.unified_symbol(channel[len(_WS_CHANNELS["trades"]):])
            return [{
                "type": "trade", "exchange": self.name, "symbol": symbol, "id": str(data["id"]),
                "timestamp": to_ms(data["microtimestamp"], scale=1_000_000), "received": received,
                "side": _SIDES[str(data["type"])],
                "price": canon_price(data["price_str"]), "amount": canon_decimal(data["amount_str"]),
            }]
        if event == "data" and channel.startswith(_WS_CHANNELS["order_book"]):
            symbol = self.unified_symbol(channel[len(_WS_CHANNELS["order_book"]):])
            return [self._book(data, symbol, received)]
        raise bad_schema(f"unexpected bitstamp frame: event {event!r} on {channel!r}")


_SIDES = {"0": "buy", "1": "sell"}
_WS_CHANNELS = {"trades": "live_trades_", "order_book": "order_book_"}
_WS_EVENTS = {"trade": "data", "data": "data", "bts:heartbeat": "heartbeat",
              "bts:subscription_succeeded": "ack", "bts:unsubscription_succeeded": "ack",
              "bts:request_reconnect": "reconnect", "bts:error": "error"}
_EVENT_RE = re.compile(r'"event"\s*:\s*"([^"]*)"')
_CHANNEL_RE = re.compile(r'"channel"\s*:\s*"([^"]*)"')

EXCHANGE = Bitstamp()
