"""Binance spot REST API v3 public market data, as served by the simulator.

Shapes come from Binance's documentation (https://developers.binance.com/docs/
binance-spot-api-docs/rest-api) and real recorded bodies (fixtures/binance/rest_*.json);
nothing is shared with the collector's parsers.

    GET /api/v3/depth?symbol=BTCUSDT&limit=100        {"lastUpdateId", "bids", "asks"}
    GET /api/v3/trades?symbol=BTCUSDT&limit=500       [{"id", "price", "qty", "quoteQty", "time",
                                                        "isBuyerMaker", "isBestMatch"}], oldest first
    GET /api/v3/ticker/24hr?symbol=BTCUSDT            {"symbol", "priceChange", ...}
    GET /api/v3/klines?symbol=BTCUSDT&interval=1m     [[open time, "o", "h", "l", "c", "v",
                                                        close time, "quote v", trades, ...]]
    GET /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo

Errors are Binance's envelope, {"code": -1121, "msg": "Invalid symbol."} with HTTP 400. Every
answer carries X-MBX-USED-WEIGHT-1M (and X-MBX-USED-WEIGHT): the request weight used in the
current window by everyone, as Binance counts it per IP. The budget is enforced like Binance
does: past `weight_limit` in a window, HTTP 429 {"code": -1003, ...} with Retry-After (seconds
to the window's end); a client that keeps asking after `ban_after` 429s is banned with HTTP 418
and Retry-After for `ban_seconds`. The window is a minute, shorter in tests if wanted.

Prices, books, trades and candles come from the same per-pair price walk as the Bitstamp
simulator (bitstamp.Market: pure functions of pair and time), written the way Binance writes
them: eight decimals for every price and quantity, milliseconds for every time.
"""
from __future__ import annotations

import calendar
import functools
import hashlib
import itertools
import json
import math
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

from .bitstamp import MAX_PAIRS, Book, Candle, Market, PairSpec, Trade, decimal_str
from .server import HugeDocument, Route, SimRequest, SimResponse

JSON_UTF8 = "application/json;charset=UTF-8"
DECIMALS = 8                      # Binance writes every price and quantity with eight decimals
UPDATE_ID_EPOCH = 1_500_000_000   # lastUpdateId = hundredths of a second since then (rising)
DEPTH_DEFAULT, DEPTH_MAX = 100, 5000
TRADES_DEFAULT, TRADES_MAX = 500, 1000
KLINES_DEFAULT, KLINES_MAX = 500, 1000
LISTED = 1_500_000_000            # 2017-07-14: no kline opens before Binance did
WEIGHT_LIMIT = 6000               # exchangeInfo REQUEST_WEIGHT, per minute per IP
_CANDLE_EXTRA = 9                 # hash namespace for kline trade counts / taker volume

# Symbols as Binance lists them; decimals are those of tick and lot size (written padded to 8).
# Price levels, volatility and activity are only plausible.
PAIRS: tuple[PairSpec, ...] = (
    PairSpec("BTCUSDT", "BTC/USDT", "Bitcoin / TetherUS", 5, 2, "5 USDT", 65000, 0.03, 60, 0.02),
    PairSpec("ETHUSDT", "ETH/USDT", "Ethereum / TetherUS", 4, 2, "5 USDT", 3300, 0.04, 40, 0.3),
    PairSpec("BNBUSDT", "BNB/USDT", "BNB / TetherUS", 3, 2, "5 USDT", 580, 0.04, 15, 1.0),
    PairSpec("SOLUSDT", "SOL/USDT", "Solana / TetherUS", 3, 2, "5 USDT", 150, 0.05, 20, 5.0),
    PairSpec("XRPUSDT", "XRP/USDT", "XRP / TetherUS", 0, 4, "5 USDT", 0.55, 0.05, 15, 900),
    PairSpec("ETHBTC", "ETH/BTC", "Ethereum / Bitcoin", 4, 5, "0.0001 BTC", 0.05, 0.025, 8, 0.5),
    PairSpec("BTCEUR", "BTC/EUR", "Bitcoin / Euro", 5, 2, "5 EUR", 60000, 0.03, 6, 0.02),
    PairSpec("BTCFDUSD", "BTC/FDUSD", "Bitcoin / First Digital USD", 5, 2, "5 FDUSD", 65000,
             0.03, 30, 0.02),
    PairSpec("USDCUSDT", "USDC/USDT", "USD Coin / TetherUS", 0, 4, "5 USDT", 1.0, 0.0005, 10, 5000),
    PairSpec("NKNUSDT", "NKN/USDT", "NKN / TetherUS", 0, 4, "5 USDT", 0.35, 0.06, 2, 500),
)

INTERVALS: dict[str, int] = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200,
    "1w": 604800, "1M": 0,   # 1M: calendar months
}
WEEK_OFFSET = 4 * 86400          # weekly klines open on Monday 00:00 UTC (1970-01-05)

# Binance's error codes and messages (errors.md), as the simulator uses them
INVALID_SYMBOL = (-1121, "Invalid symbol.")
INVALID_INTERVAL = (-1120, "Invalid interval.")
MANDATORY = -1102
BAD_PARAMETER = -1100
TOO_MANY = -1003


def _unit(*values: int) -> float:
    """A uniform number in [0, 1) determined by the values (stable across processes)."""
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def mandatory(name: str) -> tuple[int, str]:
    return MANDATORY, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."


def dumps(document: Any) -> bytes:
    # Binance's REST bodies are compact JSON.
    return json.dumps(document, separators=(",", ":")).encode()


def error_body(code: int, msg: str) -> bytes:
    return dumps({"code": code, "msg": msg})


class BadRequest(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


# -------------------------------------------------------------------------------------------
# Formatting

def fixed(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals written with Binance's eight decimals."""
    return decimal_str(units * 10 ** (DECIMALS - decimals), DECIMALS)


def price_str(market: Market, ticks: int) -> str:
    return fixed(ticks, market.spec.counter_decimals)


def amount_str(market: Market, units: int) -> str:
    return fixed(units, market.spec.base_decimals)


def quote_str(market: Market, ticks: int, units: int) -> str:
    """price × amount, cut to eight decimals."""
    spec = market.spec
    exact = ticks * units    # in 10**-(counter + base decimals)
    shift = spec.counter_decimals + spec.base_decimals - DECIMALS
    return decimal_str(exact // 10 ** shift if shift >= 0 else exact * 10 ** -shift, DECIMALS)


def update_id(now: float) -> int:
    return math.floor((now - UPDATE_ID_EPOCH) * 100)


def ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


# -------------------------------------------------------------------------------------------
# Documents in Binance's shapes

@functools.lru_cache(maxsize=16)   # about 1.25 MB each
def _book_of_second(market: Market, second: int) -> Book:
    return market.book(second, DEPTH_MAX)


def full_book(market: Market, now: float) -> Book:
    """The whole book (5000 levels a side) of the second `now` falls in: every depth limit and
    the ticker's best bid and ask are cut from the same one."""
    return _book_of_second(market, math.floor(now))


def depth_document(market: Market, now: float, limit: int = DEPTH_DEFAULT,
                   book: Book | None = None) -> dict[str, Any]:
    book = full_book(market, now) if book is None else book
    return {"lastUpdateId": update_id(book.second + 0.99),
            "bids": [[price_str(market, p), amount_str(market, a)] for p, a in book.bids[:limit]],
            "asks": [[price_str(market, p), amount_str(market, a)] for p, a in book.asks[:limit]]}


def recent_trades(market: Market, now: float, limit: int) -> list[Trade]:
    """The last `limit` trades up to now, oldest first."""
    window, found = 600, []
    while True:
        found = market.trades(now, window)          # newest first
        if len(found) >= limit or window >= 7 * 86400:
            break
        window *= 4
    return list(reversed(found[:limit]))


def trade_document(market: Market, trade: Trade) -> dict[str, Any]:
    return {"id": trade.tid, "price": price_str(market, trade.price),
            "qty": amount_str(market, trade.amount),
            "quoteQty": quote_str(market, trade.price, trade.amount),
            "time": ms(trade.at), "isBuyerMaker": trade.side == 1, "isBestMatch": True}


def trades_document(market: Market, now: float, limit: int = TRADES_DEFAULT) -> list[dict[str, Any]]:
    return [trade_document(market, t) for t in recent_trades(market, now, limit)]


def ticker_document(market: Market, now: float) -> dict[str, Any]:
    book = full_book(market, now)
    day = market.candles(900, 97, now)[-97:]   # the rolling 24 h, in quarter hours
    last = market.last_trade(now)
    last_price = last.price if last else round(market.mid_ticks(now))
    last_qty = last.amount if last else 0
    open_price = round(market.mid_ticks(now - 86400))
    prev_close = round(market.mid_ticks(now - 86400 - 1))
    volume = sum(c.volume for c in day)
    quote = sum((c.high + c.low + c.close) // 3 * c.volume for c in day)
    vwap = quote // volume if volume else last_price
    high = max(max(c.high for c in day), last_price, open_price)
    low = min(min(c.low for c in day), last_price, open_price)
    change = last_price - open_price
    last_id = last.tid if last else 0
    count = max(1, round(market.spec.trades_per_minute * 1440 * (0.9 + 0.2 * _unit(
        market.seed, _CANDLE_EXTRA, math.floor(now / 60)))))
    return {
        "symbol": market.spec.url_symbol,
        "priceChange": price_str(market, change),
        "priceChangePercent": f"{change / open_price * 100:.3f}",
        "weightedAvgPrice": price_str(market, vwap),
        "prevClosePrice": price_str(market, prev_close),
        "lastPrice": price_str(market, last_price),
        "lastQty": amount_str(market, last_qty),
        "bidPrice": price_str(market, book.bids[0][0]),
        "bidQty": amount_str(market, book.bids[0][1]),
        "askPrice": price_str(market, book.asks[0][0]),
        "askQty": amount_str(market, book.asks[0][1]),
        "openPrice": price_str(market, open_price),
        "highPrice": price_str(market, high),
        "lowPrice": price_str(market, low),
        "volume": amount_str(market, volume),
        "quoteVolume": quote_str(market, 1, quote),
        "openTime": ms(now - 86400), "closeTime": ms(now),
        "firstId": max(0, last_id - count + 1), "lastId": last_id, "count": count,
    }


def kline_row(market: Market, candle: Candle, step: int) -> list[Any]:
    spec = market.spec
    u = _unit(market.seed, _CANDLE_EXTRA, step, candle.timestamp)
    trades = round(spec.trades_per_minute * step / 60 * (0.5 + u)) if candle.volume else 0
    vwap = (candle.high + candle.low + candle.close) // 3
    taker_buy = candle.volume * 45 // 100 + round(candle.volume * 0.1 * u)
    return [ms(candle.timestamp), price_str(market, candle.open), price_str(market, candle.high),
            price_str(market, candle.low), price_str(market, candle.close),
            amount_str(market, candle.volume), ms(candle.timestamp + step) - 1,
            quote_str(market, vwap, candle.volume), trades, amount_str(market, taker_buy),
            quote_str(market, vwap, taker_buy), "0"]


def month_starts(first: int, count: int) -> list[int]:
    """Unix seconds of `count` calendar-month starts, the first being the month of `first`."""
    day = datetime.fromtimestamp(first, timezone.utc)
    year, month = day.year, day.month
    starts = []
    for _ in range(count):
        starts.append(calendar.timegm((year, month, 1, 0, 0, 0)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return starts


def kline_rows(market: Market, interval: str, now: float, limit: int = KLINES_DEFAULT,
               start: int | None = None, end: int | None = None) -> list[list[Any]]:
    """Oldest first, as Binance documents: from `start` (ms) on if given, else the last
    `limit` up to `end` (ms) or now; the running kline is included."""
    step = INTERVALS[interval]
    if step == 0:
        return _month_rows(market, now, limit, start, end)
    offset = WEEK_OFFSET if interval == "1w" else 0
    current = math.floor((now - offset) / step) * step + offset
    last = current if end is None else min(current, math.floor((end / 1000 - offset) / step) * step + offset)
    if start is not None:
        first = math.ceil((start / 1000 - offset) / step) * step + offset
        last = min(last, first + (limit - 1) * step)
    else:
        first = last - (limit - 1) * step
    first = max(first, math.ceil((LISTED - offset) / step) * step + offset)
    return [kline_row(market, market.candle(step, t, now), step)
            for t in range(first, last + step, step)] if first <= last else []


def _month_rows(market: Market, now: float, limit: int, start: int | None,
                end: int | None) -> list[list[Any]]:
    upto = now if end is None else min(now, end / 1000)
    if start is not None:
        starts = [s for s in month_starts(math.floor(start / 1000), limit + 1) if s * 1000 >= start]
        starts = [s for s in starts[:limit] if s <= upto]
    else:
        anchor = datetime.fromtimestamp(upto, timezone.utc)
        index = anchor.year * 12 + anchor.month - 1 - (limit - 1)
        starts = month_starts(calendar.timegm((index // 12, index % 12 + 1, 1, 0, 0, 0)), limit)
    starts = [s for s in starts if s >= month_starts(LISTED, 1)[0]]
    bounds = month_starts(starts[0], len(starts) + 1) if starts else []
    return [kline_row(market, market.candle(after - first, first, now), after - first)
            for first, after in zip(bounds, bounds[1:])]


def exchange_info_document(markets: Sequence[Market], now: float, weight_limit: int
                           ) -> dict[str, Any]:
    return {
        "timezone": "UTC", "serverTime": ms(now),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": 61000}],
        "exchangeFilters": [],
        "symbols": [{
            "symbol": m.spec.url_symbol, "status": "TRADING",
            "baseAsset": m.spec.name.split("/")[0], "baseAssetPrecision": DECIMALS,
            "quoteAsset": m.spec.name.split("/")[1], "quotePrecision": DECIMALS,
            "quoteAssetPrecision": DECIMALS,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fixed(1, m.spec.counter_decimals),
                 "maxPrice": "1000000.00000000", "tickSize": fixed(1, m.spec.counter_decimals)},
                {"filterType": "LOT_SIZE", "minQty": fixed(1, m.spec.base_decimals),
                 "maxQty": "9000.00000000", "stepSize": fixed(1, m.spec.base_decimals)}],
            "permissions": ["SPOT"]} for m in markets],
    }


# -------------------------------------------------------------------------------------------
# Query parameters, checked as Binance checks them

def _int_param(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise BadRequest(BAD_PARAMETER, f"Illegal characters found in parameter '{name}'; "
                         f"legal range is '^[0-9]{{1,20}}$'.") from None


def _limit(query: dict[str, str], default: int, most: int, strict: bool = True) -> int:
    limit = _int_param(query, "limit")
    if limit is None:
        return default
    if limit < 1 or (strict and limit > most):
        raise BadRequest(BAD_PARAMETER, f"Illegal characters found in parameter 'limit'; "
                         f"legal range is '1-{most}'.")
    return min(limit, most)


def depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


# -------------------------------------------------------------------------------------------
# Faulty variants of each endpoint's document (see BinanceExchange.fault_body)

def _nan_json(endpoint: str, doc: Any, market: Market) -> Any:
    nan = float("nan")   # json.dumps writes it as the bare token NaN
    if endpoint == "depth":
        doc["bids"][0][0] = nan
    elif endpoint == "trades":
        doc[-1]["price"] = nan
    elif endpoint == "ticker":
        doc["lastPrice"] = nan
    elif endpoint == "klines":
        doc[-1][4] = nan
    else:
        return {"serverTime": nan}
    return doc


def _wrong_shape(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "depth":          # levels as objects instead of [price, qty]
        for side in ("bids", "asks"):
            doc[side] = [{"price": p, "qty": a} for p, a in doc[side]]
        return doc
    if endpoint == "ticker":         # the list form (several symbols) where one was asked
        return [doc]
    if endpoint == "klines":         # rows as objects, as another exchange would send them
        keys = ("openTime", "open", "high", "low", "close", "volume", "closeTime")
        return [dict(zip(keys, row)) for row in doc]
    if endpoint == "trades":         # an object where the list belongs
        return {"symbol": market.spec.url_symbol, "trades": doc}
    return {"foo": 1}


def _crossed(endpoint: str, doc: Any, market: Market) -> Any:
    scale = 10 ** (DECIMALS - market.spec.counter_decimals)

    def ticks(text: str) -> int:
        return int(text.replace(".", "")) // scale

    if endpoint == "depth":          # every bid moved up to 1 tick above the best ask
        shift = ticks(doc["asks"][0][0]) - ticks(doc["bids"][0][0]) + 1
        doc["bids"] = [[price_str(market, ticks(p) + shift), a] for p, a in doc["bids"]]
        return doc
    if endpoint == "ticker":
        doc["bidPrice"], doc["askPrice"] = doc["askPrice"], doc["bidPrice"]
        return doc
    return None


def _unsorted(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "depth":          # the first ten bids ascending
        doc["bids"][:10] = reversed(doc["bids"][:10])
        return doc
    if endpoint in ("trades", "klines"):   # newest first
        return doc[::-1]
    return None


def _bad_values(endpoint: str, doc: Any, market: Market) -> Any:
    zero = fixed(0, 0)
    if endpoint == "depth":
        doc["lastUpdateId"] = "-1"
        doc["bids"][0][1] = "-" + doc["bids"][0][1]
        doc["asks"][0][0] = zero
    elif endpoint == "trades":
        doc[-1].update(time=0, price=zero, qty="-" + doc[-1]["qty"], isBuyerMaker="yes")
    elif endpoint == "ticker":
        doc.update(closeTime=0, volume="-" + doc["volume"], bidPrice="-1.00000000")
    elif endpoint == "klines":
        doc[0][0] = 0
        last = doc[-1]
        last[2], last[3] = last[3], last[2]   # high below low
        last[5] = "-" + last[5]
        last[8] = -1
    else:
        return {"serverTime": -1}
    return doc


FAULTY_DOCUMENTS: dict[str, Callable[[str, Any, Market], Any]] = {
    "nan_json": _nan_json, "wrong_shape": _wrong_shape, "crossed": _crossed,
    "unsorted": _unsorted, "bad_values": _bad_values,
}


# -------------------------------------------------------------------------------------------
# The request-weight budget

class WeightWindow:
    """Request weight per fixed window (a minute, as Binance counts it), the 429s and the ban."""

    def __init__(self, limit: int, seconds: float, ban_after: int, ban_seconds: float,
                 clock: Callable[[], float]) -> None:
        self.limit, self.seconds = limit, seconds
        self.ban_after, self.ban_seconds = ban_after, ban_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._window = None
        self._used = 0
        self._refused = 0
        self._banned_until = 0.0

    def charge(self, weight: int) -> tuple[int, SimResponse | None]:
        """Count a request: (weight used in this window, a refusal or None)."""
        with self._lock:
            now = self.clock()
            window = math.floor(now / self.seconds)
            if window != self._window:
                self._window, self._used, self._refused = window, 0, 0
            if now < self._banned_until:
                wait = math.ceil(self._banned_until - now)
                until = ms(self._banned_until)
                return self._used, _refusal(418, TOO_MANY, (
                    f"Way too much request weight used; IP banned until {until}. "
                    "Please use WebSocket Streams for live updates to avoid bans."), wait, self._used)
            if self._used + weight > self.limit:
                self._refused += 1
                if self._refused > self.ban_after:
                    self._banned_until = now + self.ban_seconds
                    return self._used, _refusal(418, TOO_MANY, (
                        f"Way too much request weight used; IP banned until "
                        f"{ms(self._banned_until)}. Please use WebSocket Streams for live "
                        "updates to avoid bans."), math.ceil(self.ban_seconds), self._used)
                wait = max(1, math.ceil((window + 1) * self.seconds - now))
                return self._used, _refusal(429, TOO_MANY, (
                    f"Too much request weight used; current limit is {self.limit} request "
                    f"weight per {_window_name(self.seconds)}. Please use WebSocket Streams for "
                    "live updates to avoid polling the API."), wait, self._used)
            self._used += weight
            return self._used, None

    def reset(self) -> None:
        with self._lock:
            self._window, self._used, self._refused, self._banned_until = None, 0, 0, 0.0


def _window_name(seconds: float) -> str:
    return "1 MINUTE" if seconds == 60 else f"{seconds:g} SECONDS"


def _refusal(status: int, code: int, msg: str, retry_after: int, used: int) -> SimResponse:
    return SimResponse(status, error_body(code, msg), JSON_UTF8,
                       {"Retry-After": str(retry_after), **_weight_headers(used)})


def _weight_headers(used: int) -> dict[str, str]:
    return {"x-mbx-used-weight": str(used), "x-mbx-used-weight-1m": str(used)}


# -------------------------------------------------------------------------------------------
# The exchange as the server sees it

class BinanceExchange:
    """Binance's public REST API v3 market data. `clock` is injectable so tests can move time;
    `weight_limit`, `window_seconds`, `ban_after` and `ban_seconds` shape the rate limit (and
    may be changed while running; `reset_weight()` starts a fresh window)."""

    name = "binance"

    def __init__(self, clock: Callable[[], float] = time.time, pairs: Sequence[PairSpec] = PAIRS,
                 weight_limit: int = WEIGHT_LIMIT, window_seconds: float = 60.0,
                 ban_after: int = 3, ban_seconds: float = 120.0) -> None:
        if len(pairs) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} pairs (trade ids are numbered per pair)")
        self.clock = clock
        self.markets = {spec.url_symbol: Market(spec, i) for i, spec in enumerate(pairs)}
        self.weights = WeightWindow(weight_limit, window_seconds, ban_after, ban_seconds, clock)

    @property
    def weight_limit(self) -> int:
        return self.weights.limit

    @weight_limit.setter
    def weight_limit(self, value: int) -> None:
        self.weights.limit = int(value)

    def reset_weight(self) -> None:
        self.weights.reset()

    def routes(self) -> list[Route]:
        return [
            Route(r"/api/v3/depth", self._serve(self.depth), "depth"),
            Route(r"/api/v3/trades", self._serve(self.trades), "trades"),
            Route(r"/api/v3/ticker/24hr", self._serve(self.ticker), "ticker"),
            Route(r"/api/v3/klines", self._serve(self.klines), "klines"),
            Route(r"/api/v3/exchangeInfo", self._serve(self.exchange_info), "exchange_info"),
            Route(r"/api/v3/ping", self._serve(lambda request: (1, {})), "ping"),
            Route(r"/api/v3/time", self._serve(
                lambda request: (1, {"serverTime": ms(self.clock())})), "time"),
        ]

    def _serve(self, endpoint: Callable[[SimRequest], tuple[int, Any]]
               ) -> Callable[[SimRequest], SimResponse]:
        """Weigh the request, answer it or refuse it, with the used-weight headers."""
        def handler(request: SimRequest) -> SimResponse:
            try:
                weight, document = endpoint(request)
            except BadRequest as error:
                weight, document = 1, error
            used, refusal = self.weights.charge(weight)
            if refusal is not None:
                return refusal
            if isinstance(document, BadRequest):
                return SimResponse(document.status, error_body(document.code, document.msg),
                                   JSON_UTF8, _weight_headers(used))
            return SimResponse(200, dumps(document), JSON_UTF8, _weight_headers(used))
        return handler

    def _market(self, request: SimRequest) -> Market:
        symbol = request.query.get("symbol")
        if not symbol:
            raise BadRequest(*mandatory("symbol"))
        market = self.markets.get(symbol)
        if market is None:
            raise BadRequest(*INVALID_SYMBOL)
        return market

    # -- endpoints (each returns its weight and document) ---------------------------------------

    def depth(self, request: SimRequest) -> tuple[int, Any]:
        limit = _limit(request.query, DEPTH_DEFAULT, DEPTH_MAX, strict=False)
        market = self._market(request)
        return depth_weight(limit), depth_document(market, self.clock(), limit)

    def trades(self, request: SimRequest) -> tuple[int, Any]:
        limit = _limit(request.query, TRADES_DEFAULT, TRADES_MAX)
        market = self._market(request)
        return 25, trades_document(market, self.clock(), limit)

    def ticker(self, request: SimRequest) -> tuple[int, Any]:
        if "symbol" not in request.query:
            return 80, [ticker_document(m, self.clock()) for m in self.markets.values()]
        return 2, ticker_document(self._market(request), self.clock())

    def klines(self, request: SimRequest) -> tuple[int, Any]:
        market = self._market(request)
        interval = request.query.get("interval")
        if not interval:
            raise BadRequest(*mandatory("interval"))
        if interval not in INTERVALS:
            raise BadRequest(*INVALID_INTERVAL)
        limit = _limit(request.query, KLINES_DEFAULT, KLINES_MAX)
        start, end = _int_param(request.query, "startTime"), _int_param(request.query, "endTime")
        if start is not None and end is not None and start > end:
            raise BadRequest(-1023, "Start time is greater than end time.")
        return 2, kline_rows(market, interval, self.clock(), limit, start, end)

    def exchange_info(self, request: SimRequest) -> tuple[int, Any]:
        return 20, exchange_info_document(list(self.markets.values()), self.clock(),
                                          self.weights.limit)

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            code, msg = INVALID_SYMBOL
            if params.get("response_code") is not None:
                try:
                    code = int(params["response_code"])
                except (TypeError, ValueError):
                    pass
            return error_body(code, params.get("reason") or msg)
        mutate = FAULTY_DOCUMENTS.get(kind)
        if mutate is None or request.endpoint is None:
            return None
        market, now = self._fault_market(request), self.clock()
        faulty = mutate(request.endpoint, self._fault_document(request, market, now), market)
        return None if faulty is None else dumps(faulty)

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        market, now = self._fault_market(request), self.clock()
        if request.endpoint == "depth":    # the normal bids, then asks without end
            book = full_book(market, now)
            head = dumps(depth_document(market, now, DEPTH_DEFAULT,
                                        Book(book.second, book.bids, []))).decode()
            head = head[: head.rindex("]")]   # reopen the empty asks list
            return HugeDocument(head.encode(), _endless_asks(market, book), b"]}", b",")
        if request.endpoint == "trades":
            return HugeDocument(b"[", _endless_trades(market, now), b"]", b",")
        return None

    def _fault_market(self, request: SimRequest) -> Market:
        # Faults are wanted even for symbols Binance does not list: render them for BTCUSDT.
        return self.markets.get(request.query.get("symbol", "")) or next(iter(self.markets.values()))

    def _fault_document(self, request: SimRequest, market: Market, now: float) -> Any:
        """The endpoint's normal document, built leniently (bad query -> defaults) and big
        enough for every fault to have something to break."""
        endpoint, query = request.endpoint, request.query

        def lenient(default: int, most: int) -> int:
            try:
                return max(10, _limit(query, default, most, strict=False))
            except BadRequest:
                return default

        if endpoint == "depth":
            return depth_document(market, now, lenient(DEPTH_DEFAULT, DEPTH_MAX))
        if endpoint == "trades":
            return trades_document(market, now, lenient(TRADES_DEFAULT, TRADES_MAX))
        if endpoint == "ticker":
            return ticker_document(market, now)
        if endpoint == "klines":
            interval = query.get("interval") if query.get("interval") in INTERVALS else "1m"
            return kline_rows(market, interval, now, lenient(KLINES_DEFAULT, KLINES_MAX))
        return {"serverTime": ms(now)}


def _endless_asks(market: Market, book: Book) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending from the best ask, a hundred per item."""
    amounts = [amount_str(market, amount) for _, amount in book.asks[:7]]
    for first in itertools.count(book.asks[0][0], 100):
        yield ",".join(f'["{price_str(market, p)}","{amounts[p % 7]}"]'
                       for p in range(first, first + 100)).encode()


def _endless_trades(market: Market, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades (ids and times going down), priced like the last hour's."""
    recent = market.trades(now, 3600) or [Trade(1, now, round(market.mid_ticks(now)), 1, 0)]
    newest_id, newest_ms = recent[0].tid, ms(recent[0].at)
    models = [(price_str(market, t.price), amount_str(market, t.amount),
               quote_str(market, t.price, t.amount), "true" if t.side else "false")
              for t in recent]
    for first in itertools.count(0, batch):
        trades = []
        for n in range(first, first + batch):
            price, qty, quote, maker = models[n % len(models)]
            trades.append(f'{{"id":{newest_id - n},"price":"{price}","qty":"{qty}",'
                          f'"quoteQty":"{quote}","time":{newest_ms - n * 250},'
                          f'"isBuyerMaker":{maker},"isBestMatch":true}}')
        yield ",".join(trades).encode()


SIM_REST = BinanceExchange   # found by proj.sim.default_exchanges()
