"""Bitstamp (https://www.bitstamp.net/api/): REST v2 public market data.

Markets are lowercase concatenations (btcusd); REST values are all strings, times in unix
seconds except the order book's `microtimestamp`. Errors come as
{"status": "error", "reason": ...}, sometimes with HTTP 200.
"""
from __future__ import annotations

from ..records import (CollectorError, bad_schema, canon_decimal, canon_optional_amount,
                       canon_optional_price, canon_price, to_ms)
from .base import Exchange

# Quote currencies Bitstamp lists, longest first so that "usdt" wins over "usd".
_QUOTES = ("pyusd", "rlusd", "usdt", "usdc", "eurc", "usd", "eur", "gbp", "btc", "eth", "pax")


class Bitstamp(Exchange):
    name = "bitstamp"
    rest_url = "https://www.bitstamp.net"
    timeframes = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
                  "2h": 7200, "4h": 14400, "6h": 21600, "12h": 43200, "1d": 86400}
    max_candles = 1000

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
        bids, asks = doc["bids"], doc["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(doc["microtimestamp"], scale=1_000_000),
            "received": received, "nonce": None,
            "bids": [[canon_price(p), canon_decimal(a)] for p, a in bids],
            "asks": [[canon_price(p), canon_decimal(a)] for p, a in asks],
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


_SIDES = {"0": "buy", "1": "sell"}

EXCHANGE = Bitstamp()
