"""Binance spot: REST API v3 public market data (https://developers.binance.com/docs/
binance-spot-api-docs/rest-api) and the websocket market streams (.../web-socket-streams).

Symbols are upper-case concatenations (BTCUSDT); prices and quantities are strings with eight
decimals ("60650.01000000"), times integer milliseconds, lists oldest first. Errors come as
{"code": -1121, "msg": "Invalid symbol."} (HTTP 400; code 0 and HTTP 451 from a restricted
location); code -1003 means too much request weight ("too many requests"). Every answer carries
X-MBX-USED-WEIGHT-1M, the IP's request weight used in the current minute, against a budget of
6000 per minute (exchangeInfo's REQUEST_WEIGHT); 429 then 418 (IP ban) with Retry-After.

Websocket: combined streams, subscribed in the URL (/stream?streams=btcusdt@trade/
btcusdt@depth20@100ms); frames {"stream": name, "data": payload}. `<sym>@trade` payloads carry
`m` = "is the buyer the maker", so m true means the taker sold. `<sym>@depth<N>[@100ms]` are
top-N book snapshots with no symbol and no time: the symbol comes from the stream name. The
server sends protocol pings (answered by websocket-client), cuts connections at 24 hours and
may announce it with a serverShutdown event, which asks for a new connection.
"""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

from ..records import (CollectorError, bad_schema, canon_decimal, canon_pair_levels, canon_price,
                       to_ms)
from .base import Exchange

# Quote assets Binance spot lists, longest first so that "FDUSD" wins over "USD..." and
# "USDT" over shorter tails. A market ending in none of these is refused, not guessed.
# Left out on purpose: quotes that end in another quote (AEUR ~ EUR, BIDR ~ IDR) make the
# split ambiguous from the text alone (ADAEUR is ADA/EUR, not AD/AEUR); the common market
# wins, and such a rare pair needs the exchange's own symbol list.
_QUOTES = tuple(sorted((
    "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USDP", "DAI", "BFUSD", "USD1", "EURI",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "GBP", "TRY", "BRL", "AUD", "JPY", "RUB", "UAH", "ZAR", "PLN", "RON", "ARS", "MXN",
    "COP", "CZK", "NGN", "IDR", "IDRT", "BKRW", "VAI", "PAX", "UST",
), key=len, reverse=True))

# REST request weights (GET /api/v3/depth, /trades, /klines, /ticker/24hr with one symbol)
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))
WEIGHTS = {"trades": 25, "ticker": 2, "candles": 2}
DEFAULT_DEPTH = 100        # Binance's default `limit` of /depth
MAX_DEPTH = 5000
DEFAULT_TRADES = 500       # Binance's default (and our request) for /trades; max 1000
MAX_TRADES = 1000
DEFAULT_CANDLES = 100      # ours (Binance's own default is 500); max 1000
MAX_CANDLES = 1000
RATE_LIMIT_CODES = (-1003, -1015)   # TOO_MANY_REQUESTS, TOO_MANY_ORDERS
WS_BOOK_LEVELS = 20


class Binance(Exchange):
    name = "binance"
    rest_url = "https://api.binance.com"
    # every unified timeframe exists as a Binance kline interval of the same name
    timeframes = {tf: tf for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                                    "12h", "1d", "1w")}
    # exchangeInfo's REQUEST_WEIGHT: 6000 per minute per IP (developers.binance.com, spot
    # REST API "LIMITS"; raised from 1200 on 2023-08-25)
    rate_limit = (6000, 60)
    ws_url = "wss://stream.binance.com:9443/stream"
    ws_types = ("trades", "order_book")
    ws_heartbeat_interval = None   # the server pings; websocket-client answers with pongs

    # ---- symbols ------------------------------------------------------------------------
    def to_exchange_symbol(self, symbol: str) -> str:
        base, _, quote_asset = symbol.partition("/")
        return f"{base}{quote_asset}".upper()

    def from_exchange_symbol(self, market: str) -> str:
        market = market.upper()
        for quote_asset in _QUOTES:
            if market.endswith(quote_asset) and len(market) > len(quote_asset):
                return f"{market[:-len(quote_asset)]}/{quote_asset}"
        raise bad_schema(f"unknown Binance market {market!r}")

    # ---- REST -----------------------------------------------------------------------------
    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        market = self.to_exchange_symbol(symbol)
        if kind == "order_book":
            return "/api/v3/depth", {"symbol": market, "limit": _depth_limit(limit)}
        if kind == "trades":
            return "/api/v3/trades", {"symbol": market,
                                      "limit": min(limit or DEFAULT_TRADES, MAX_TRADES)}
        if kind == "ticker":
            return "/api/v3/ticker/24hr", {"symbol": market}
        if kind == "candles":
            interval = self.exchange_timeframe(timeframe)
            return "/api/v3/klines", {"symbol": market, "interval": interval,
                                      "limit": min(limit or DEFAULT_CANDLES, MAX_CANDLES)}
        raise CollectorError("unsupported", f"binance has no {kind!r}")

    def request_weight(self, kind, limit=None):
        if kind == "order_book":
            depth = _depth_limit(limit)
            return next(weight for top, weight in DEPTH_WEIGHTS if depth <= top)
        return WEIGHTS.get(kind, 1)

    def used_weight(self, headers):
        value = headers.get("x-mbx-used-weight-1m")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def error_reason(self, doc):
        # {"code": -1121, "msg": "Invalid symbol."}; no data document has both keys
        if isinstance(doc, dict) and "msg" in doc and "code" in doc:
            return f"{doc['msg']} (code {doc['code']})"
        return None

    def is_rate_limit_error(self, doc):
        return isinstance(doc, dict) and doc.get("code") in RATE_LIMIT_CODES

    def parse_order_book(self, doc, symbol, received, limit):
        return self._book(doc, symbol, received, limit)

    def _book(self, doc, symbol, received, limit=None):
        bids, asks, nonce = doc["bids"], doc["asks"], doc["lastUpdateId"]
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            raise bad_schema(f"binance lastUpdateId is not an integer: {nonce!r:.40}")
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": None,   # neither /depth nor the partial-depth streams give a time
            "received": received, "nonce": nonce,
            "bids": canon_pair_levels(bids), "asks": canon_pair_levels(asks),
        }

    def parse_trades(self, doc, symbol, received, limit):
        if not isinstance(doc, list):
            raise bad_schema("binance trades: expected a list")
        trades = [{
            "type": "trade", "exchange": self.name, "symbol": symbol,
            "id": str(_integer(t["id"], "trade id")), "timestamp": to_ms(t["time"]),
            "received": received, "side": _taker_side(t["isBuyerMaker"]),
            "price": canon_price(t["price"]), "amount": canon_decimal(t["qty"]),
        } for t in doc]
        trades.sort(key=lambda t: int(t["id"]))   # documented oldest first; made sure of
        return trades[-limit:] if limit else trades

    def parse_ticker(self, doc, symbol, received):
        if not isinstance(doc, dict):
            raise bad_schema("binance ticker: expected an object")
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": to_ms(doc["closeTime"]), "received": received,
            "bid": _price_or_none(doc["bidPrice"]), "ask": _price_or_none(doc["askPrice"]),
            "last": _price_or_none(doc["lastPrice"]), "open": _price_or_none(doc["openPrice"]),
            "high": _price_or_none(doc["highPrice"]), "low": _price_or_none(doc["lowPrice"]),
            "volume": canon_decimal(doc["volume"]),
            "quote_volume": canon_decimal(doc["quoteVolume"]),
            "vwap": _price_or_none(doc["weightedAvgPrice"]),
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        if not isinstance(doc, list):
            raise bad_schema("binance klines: expected a list")
        # [open time, open, high, low, close, volume, close time, quote volume, trades, ...]
        candles = [{
            "type": "candle", "exchange": self.name, "symbol": symbol, "timeframe": timeframe,
            "timestamp": to_ms(row[0]), "received": received,
            "open": canon_price(row[1]), "high": canon_price(row[2]),
            "low": canon_price(row[3]), "close": canon_price(row[4]),
            "volume": canon_decimal(row[5]), "trades": _integer(row[8], "kline trade count"),
        } for row in doc]
        candles.sort(key=lambda c: c["timestamp"])
        return candles[-limit:] if limit else candles

    # ---- websocket ------------------------------------------------------------------------
    def ws_connect_url(self, url, symbols, types):
        """The configured base (wss://stream.binance.com:9443/stream, or the simulator's
        ws://127.0.0.1:P/binance/stream) with the combined streams in its query."""
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith("/ws"):          # a raw-stream base: the combined endpoint beside it
            path = path[:-3]
        if not path.endswith("/stream"):
            path += "/stream"
        streams = "streams=" + quote("/".join(self.ws_channels(symbols, types)), safe="/@")
        query = f"{parts.query}&{streams}" if parts.query else streams
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))

    def ws_channels(self, symbols, types):
        channels = []
        for kind in types:
            if kind not in _WS_SUFFIX:
                raise CollectorError("unsupported", f"binance streams no {kind!r} "
                                     f"(it streams {', '.join(self.ws_types)})")
            channels += [self.to_exchange_symbol(s).lower() + _WS_SUFFIX[kind] for s in symbols]
        return channels

    def ws_subscribe_messages(self, symbols, types):
        return []   # the streams are in the URL

    def ws_classify(self, text):
        # A prefix test, not a parse: data frames open with their stream's name.
        match = _STREAM_RE.match(text)
        if match and "@" in match.group(1):
            return "data", match.group(1)
        if "serverShutdown" in text:
            return "reconnect", ""
        head = text[:200]
        if _ERROR_RE.search(head):
            return "error", ""
        if _RESULT_RE.search(head):
            return "ack", ""
        return "unknown", ""

    def parse_ws_doc(self, doc, received):
        stream, data = doc["stream"], doc["data"]
        market, _, kind = stream.partition("@")
        if kind == "trade":
            if data.get("e") != "trade":
                raise bad_schema(f"binance {stream}: event {data.get('e')!r}, not a trade")
            return [{
                "type": "trade", "exchange": self.name,
                "symbol": self.unified_symbol(data["s"]),
                "id": str(_integer(data["t"], "trade id")), "timestamp": to_ms(data["T"]),
                "received": received, "side": _taker_side(data["m"]),
                "price": canon_price(data["p"]), "amount": canon_decimal(data["q"]),
            }]
        if _PARTIAL_DEPTH_RE.fullmatch(kind):
            return [self._book(data, self.unified_symbol(market), received)]
        raise bad_schema(f"binance stream {stream!r} is not one of trades or a partial book")


def _depth_limit(limit) -> int:
    return min(limit or DEFAULT_DEPTH, MAX_DEPTH)


def _integer(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_schema(f"binance {what} is not a non-negative integer: {value!r:.40}")
    return value


def _taker_side(buyer_is_maker) -> str:
    """isBuyerMaker / m: the buyer's order was resting, so the taker sold."""
    if buyer_is_maker is True:
        return "sell"
    if buyer_is_maker is False:
        return "buy"
    raise bad_schema(f"binance isBuyerMaker is not a boolean: {buyer_is_maker!r:.40}")


def _price_or_none(value) -> str | None:
    """Binance writes "0.00000000" where there is no price (no bid, no trade in 24 h)."""
    price = canon_decimal(value)
    return None if price == "0" else price


_WS_SUFFIX = {"trades": "@trade", "order_book": f"@depth{WS_BOOK_LEVELS}@100ms"}
_PARTIAL_DEPTH_RE = re.compile(r"depth(5|10|20)(@100ms|@1000ms)?")
_STREAM_RE = re.compile(r'\{\s*"stream"\s*:\s*"([^"]*)"')
_ERROR_RE = re.compile(r'"(?:code|error)"\s*:')
_RESULT_RE = re.compile(r'"result"\s*:')

EXCHANGE = Binance()
