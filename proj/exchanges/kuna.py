"""Kuna (kuna.io): public REST API v4 (https://docs.kuna.io/docs/general-api-information-1).

Pairs are BASE_QUOTE in upper case (BTC_USDT). Every answer wraps its payload in
{"data": ...}; values are decimal strings without trailing zeros.

- Order book: GET /v4/order/public/book/{pair}?level=  (level one of 5, 10, 20, 50, 100, 500,
  1000; default 1000). Bids highest first, asks lowest first; no time, no sequence number.
  https://docs.kuna.io/docs/get-public-orders-book
- Trades: GET /v4/trade/public/book/{pair}?limit=  (1..100, default 25), newest first. A trade
  has a UUID `id`, `matchPrice`, `matchQuantity`, `createdAt` (ISO 8601 UTC, ms) and
  `side` "Bid"/"Ask" ("Bid for buying base asset": the direction of the trade, i.e. of its
  taker) on the docs page; the API reference shows `type` "Buy"/"Sell" instead. Both are read.
  https://docs.kuna.io/docs/get-public-trades-book
- Tickers: GET /v4/markets/public/tickers?pairs=A_B,C_D: a list, one object per pair, 24 h
  `high`/`low`/`baseVolume`/`quoteVolume`, `bestBidPrice`/`bestAskPrice` and `price`; a pair
  that did not trade has "0" everywhere (-> null). No time, no open, no vwap.
  https://docs.kuna.io/reference/marketpubliccontroller_gettickers-1
- Candles: API v4 has no public candles endpoint -> unsupported.
- Websocket: the v4 docs show no public websocket API, so none here.

Errors come as {"errors": [{"message": ..., "code": ..., "extensions": {"code": ...}}]}
(a code such as ARGUMENT_VALIDATION_ERROR, WrongRequestException, NotFoundException; the
envelope as ccxt's Kuna v4 adapter documents it). The web framework underneath (NestJS, by its
"Cannot GET /v4/..." messages) may also answer in its default shape {"statusCode": 404,
"message": ..., "error": "Not Found"}: not shown in Kuna's docs, read all the same. Both
become exchange_error with their message; an error whose code or message says "too many
requests" (or throttling), or statusCode 429, becomes rate_limited.

Rate limit: the docs give no figure for public endpoints, only that the private copies of
these endpoints have higher limits. ccxt's Kuna v4 adapter spaces public calls 1000 ms apart
(rateLimit: 1000; 200 ms authenticated, 50 ms PRO), so the budget here is 1 request per second.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ..records import (MIN_MS, CollectorError, bad_schema, canon_decimal, canon_pair_levels,
                       canon_price)
from .base import Exchange

BOOK_LEVELS = (5, 10, 20, 50, 100, 500, 1000)
MAX_TRADES = 100

_PAIR_RE = re.compile(r"([A-Z0-9]+)_([A-Z0-9]+)")
_ISO_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                     r"(Z|[+-]\d\d:?\d\d)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# The taker's direction: "Bid" buys the base asset, "Ask" sells it (docs page); "Buy"/"Sell"
# in the API reference's example.
_SIDES = {"bid": "buy", "ask": "sell", "buy": "buy", "sell": "sell"}
_RATE_LIMIT_RE = re.compile(r"too[ _-]?many[ _-]?requests|throttl|rate[ _-]?limit", re.I)


class Kuna(Exchange):
    name = "kuna"
    rest_url = "https://api.kuna.io"
    timeframes: dict = {}          # no public candles in API v4
    rate_limit = (1, 1)            # 1 request per second (see the module docstring)

    # ---- symbols --------------------------------------------------------------------------
    def to_exchange_symbol(self, symbol: str) -> str:
        base, _, quote = symbol.upper().partition("/")
        return f"{base}_{quote}"

    def from_exchange_symbol(self, market: str) -> str:
        match = _PAIR_RE.fullmatch(market.upper()) if isinstance(market, str) else None
        if match is None:
            raise bad_schema(f"unknown Kuna pair {market!r:.40}")
        return f"{match.group(1)}/{match.group(2)}"

    # ---- requests -------------------------------------------------------------------------
    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        pair = self.to_exchange_symbol(symbol)
        if kind == "order_book":
            if not limit:
                return f"/v4/order/public/book/{pair}", {}   # Kuna's default: 1000 levels
            level = next((n for n in BOOK_LEVELS if n >= limit), BOOK_LEVELS[-1])
            return f"/v4/order/public/book/{pair}", {"level": level}
        if kind == "trades":
            return f"/v4/trade/public/book/{pair}", {"limit": min(limit or MAX_TRADES, MAX_TRADES)}
        if kind == "ticker":
            return "/v4/markets/public/tickers", {"pairs": pair}
        if kind == "candles":
            raise CollectorError("unsupported", "kuna has no public candles (API v4)")
        raise CollectorError("unsupported", f"kuna has no {kind!r}")

    # ---- errors ---------------------------------------------------------------------------
    def error_reason(self, doc):
        if not isinstance(doc, dict) or doc.get("data") is not None:
            return None
        errors = doc.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(_one_error(e) for e in errors)
        if isinstance(errors, dict):
            return _one_error(errors)
        # the web framework's own answer: {"statusCode": 404, "message": "Cannot GET ...", ...}
        if isinstance(doc.get("statusCode"), int) and "message" in doc:
            message = doc["message"]
            if isinstance(message, list):
                message = "; ".join(map(str, message))
            error = doc.get("error")
            return f"{message} ({doc['statusCode']} {error})" if error else \
                f"{message} ({doc['statusCode']})"
        return None

    def is_rate_limit_error(self, doc) -> bool:
        if not isinstance(doc, dict):
            return False
        if doc.get("statusCode") == 429:
            return True
        errors = doc.get("errors")
        errors = [errors] if isinstance(errors, dict) else errors
        if not isinstance(errors, list):
            return False
        for error in errors:
            if isinstance(error, dict):
                extensions = error.get("extensions")
                texts = (error.get("code"), error.get("message"),
                         extensions.get("code") if isinstance(extensions, dict) else None)
                if any(isinstance(t, str) and _RATE_LIMIT_RE.search(t) for t in texts):
                    return True
        return False

    # ---- parsers --------------------------------------------------------------------------
    def parse_order_book(self, doc, symbol, received, limit):
        book = doc["data"]
        bids, asks = book["bids"], book["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": None, "received": received, "nonce": None,
            "bids": canon_pair_levels(bids), "asks": canon_pair_levels(asks),
        }

    def parse_trades(self, doc, symbol, received, limit):
        rows = doc["data"]
        if not isinstance(rows, list):
            raise bad_schema("kuna trades: expected a list")
        trades = [self._trade(t, symbol, received) for t in rows]
        trades.reverse()   # Kuna lists newest first; records go oldest first,
        trades.sort(key=lambda t: t["timestamp"])   # whatever order an answer comes in
        return trades[-limit:] if limit else trades

    def _trade(self, t: dict, symbol: str, received: int) -> dict:
        side = t.get("side", t.get("type"))
        return {
            "type": "trade", "exchange": self.name, "symbol": symbol,
            "id": str(t["id"]), "timestamp": iso_to_ms(t["createdAt"]), "received": received,
            "side": _SIDES[side.lower()] if isinstance(side, str) else None,
            "price": canon_price(t["matchPrice"]), "amount": canon_decimal(t["matchQuantity"]),
        }

    def parse_ticker(self, doc, symbol, received):
        rows = doc["data"]
        if not isinstance(rows, list):
            raise bad_schema("kuna tickers: expected a list")
        pair = self.to_exchange_symbol(symbol)
        row = next((r for r in rows if r["pair"] == pair), None)
        if row is None:
            raise CollectorError("exchange_error", f"kuna answered no ticker for {pair}")
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": None, "received": received,
            "bid": _price_or_none(row["bestBidPrice"]), "ask": _price_or_none(row["bestAskPrice"]),
            # `price` ("current median price" in Kuna's docs) is not the bid/ask mid in the
            # documented example (19999 against 19975/19976): it is taken as the last price
            "last": _price_or_none(row["price"]),
            "open": None,   # only open = price - priceChange could say, and that is float noise
            "high": _price_or_none(row["high"]), "low": _price_or_none(row["low"]),
            "volume": _amount_or_none(row["baseVolume"]),
            "quote_volume": _amount_or_none(row["quoteVolume"]),
            "vwap": None,
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        raise CollectorError("unsupported", "kuna has no public candles (API v4)")

    # ---- websocket: none public in API v4 (the base class answers unsupported) -------------
    def ws_classify(self, text):
        return "unknown", ""


def _one_error(error) -> str:
    if not isinstance(error, dict):
        return str(error)
    extensions = error.get("extensions")
    code = error.get("code") or (extensions.get("code") if isinstance(extensions, dict) else None)
    message = error.get("message")
    if message and code and str(code) not in str(message):
        return f"{message} ({code})"
    return str(message or code or error)


def _price_or_none(value):
    """Kuna writes "0" (and "") where a pair has no price, e.g. no trade in 24 h."""
    if value is None or value == "":
        return None
    price = canon_decimal(value)
    return None if price == "0" else price


def _amount_or_none(value):
    return None if value is None or value == "" else canon_decimal(value)


def iso_to_ms(text) -> int:
    """ISO 8601 ("2022-09-23T14:30:41.486Z") to integer milliseconds, exactly (no float)."""
    match = _ISO_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad_schema(f"not an ISO 8601 time: {text!r:.40}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in (None, "Z"):
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                      tzinfo=tz)
    ms = (moment - _EPOCH) // _MS + (int(fraction[:3].ljust(3, "0")) if fraction else 0)
    if ms < MIN_MS:
        raise bad_schema(f"time before 2009: {text!r}")
    return ms


EXCHANGE = Kuna()
