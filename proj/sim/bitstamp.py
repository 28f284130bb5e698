"""Bitstamp REST v2 public market data, as served by the simulator.

Shapes come from Bitstamp's documentation and real recorded bodies (fixtures/bitstamp/*.json);
nothing is shared with the collector's parsers, so when the two disagree the tests notice.

Every number is a pure function of (pair, time): a deterministic per-pair random walk gives
the mid price at any instant, the book around it is seeded by the second, and trades are seeded
by the second they happen in. So concurrent requests agree with each other (ticker bid/ask =
book top of the same second, last trade next to the mid), history is the same every time it is
asked for, and new trades with higher tids appear as the clock moves, all without mutable state
shared between handler threads.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from .server import HugeDocument, Route, SimRequest, SimResponse, json_response, not_found_response


@dataclass(frozen=True)
class PairSpec:
    url_symbol: str
    name: str
    description: str
    base_decimals: int            # decimals of amounts
    counter_decimals: int         # decimals of prices
    minimum_order: str
    base_price: float             # long-run level the walk wanders around
    daily_volatility: float       # of log price
    trades_per_minute: float
    typical_amount: float         # of one trade or book level, in base currency


# Names and decimals as in Bitstamp's trading-pairs-info
# (fixtures/bitstamp/rest_trading_pairs_info.json); price levels, volatility and activity are
# only plausible.
PAIRS: tuple[PairSpec, ...] = (
    PairSpec("btcusd", "BTC/USD", "Bitcoin / U.S. dollar", 8, 2, "20.0 USD", 65000, 0.03, 12, 0.05),
    PairSpec("btceur", "BTC/EUR", "Bitcoin / Euro", 8, 2, "20.0 EUR", 60000, 0.03, 6, 0.05),
    PairSpec("ethusd", "ETH/USD", "Ether / U.S. dollar", 8, 2, "20.0 USD", 3300, 0.04, 8, 0.8),
    PairSpec("ethbtc", "ETH/BTC", "Ether / Bitcoin", 8, 8, "0.0002 BTC", 0.05, 0.025, 2, 1.0),
    PairSpec("btcusdt", "BTC/USDT", "Bitcoin / Tether", 8, 2, "20.0 USDT", 65000, 0.03, 4, 0.03),
    PairSpec("ethusdt", "ETH/USDT", "Ether / Tether", 8, 2, "20.0 USDT", 3300, 0.04, 3, 0.5),
    PairSpec("usdtusd", "USDT/USD", "Tether / U.S. dollar", 5, 5, "20.0 USD", 1.0, 0.0005, 3, 2000),
    PairSpec("xrpusd", "XRP/USD", "XRP / U.S. dollar", 8, 5, "20.0 USD", 0.55, 0.05, 5, 800),
    PairSpec("ltcusd", "LTC/USD", "Litecoin / U.S. dollar", 8, 2, "20.0 USD", 80, 0.045, 3, 5),
)

OHLC_STEPS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200)
OHLC_MAX_LIMIT = 1000
TRANSACTION_WINDOWS = {"minute": 60, "hour": 3600, "day": 86400}
BOOK_DEPTH = 100

SPREAD_FRACTION = 0.0001        # typical best-bid/best-ask spread, relative to the mid
LEVEL_GAP_FRACTION = 0.0002     # largest gap between neighbouring book levels
OCTAVE_SCALES = tuple(60 * 4 ** k for k in range(9))   # random-walk layers: 1 minute .. 45 days

# tid = ((second - TID_EPOCH) * MAX_PAIRS + pair index) * MAX_TRADES_PER_SECOND + n:
# unique across pairs (Bitstamp's tids are exchange-wide) and increasing with time.
TID_EPOCH = 1_500_000_000
MAX_PAIRS = 16
MAX_TRADES_PER_SECOND = 8

# Separate hash namespaces, so the walk, books, trades and candles are independent streams.
_WALK, _BOOK, _TRADE, _CANDLE = 1, 2, 3, 4
_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """splitmix64 over the values: fast and stable across processes (hash() is salted)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 31
    return state


def _unit(*values: int) -> float:
    """A uniform number in [0, 1) determined by the values."""
    return _mix(*values) / 2.0 ** 64


def _keyed_unit(key: int, value: int) -> float:
    """_unit for the hot paths: one splitmix64 finalizer over a premixed key and a value."""
    state = (key ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
    state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK64
    return (state ^ (state >> 31)) / 2.0 ** 64


def _poisson(rate: float, uniform: float, cap: int) -> int:
    """Inverse-CDF Poisson draw from one uniform number."""
    probability = cumulative = math.exp(-rate)
    count = 0
    while uniform > cumulative and count < cap:
        count += 1
        probability *= rate / count
        cumulative += probability
    return count


def decimal_str(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals as Bitstamp writes it: fixed decimals, e.g. "3802.90"."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10 ** decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}" if decimals else f"{sign}{whole}"


@dataclass(frozen=True)
class Trade:
    tid: int
    at: float          # unix seconds, with a fraction
    price: int         # ticks of 10**-counter_decimals
    amount: int        # units of 10**-base_decimals
    side: int          # Bitstamp's "type": 0 buy, 1 sell


@dataclass(frozen=True)
class Book:
    second: int
    bids: list[tuple[int, int]]    # (price ticks, amount units), best first
    asks: list[tuple[int, int]]


@dataclass(frozen=True)
class Candle:
    timestamp: int
    open: int
    high: int
    low: int
    close: int
    volume: int


class Market:
    """One pair: prices, book, trades and candles as functions of time."""

    def __init__(self, spec: PairSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        digest = hashlib.blake2b(spec.url_symbol.encode(), digest_size=8).digest()
        self.seed = int.from_bytes(digest, "big")
        self.price_scale = 10 ** spec.counter_decimals
        self.amount_scale = 10 ** spec.base_decimals
        # Hash keys per random-walk layer, precomputed: the walk is the hot path.
        self._octave_keys = [_mix(self.seed, _WALK, octave) for octave in range(len(OCTAVE_SCALES))]
        self._amplitudes = [spec.daily_volatility * math.sqrt(scale / 86400)
                            for scale in OCTAVE_SCALES]
        self._trade_key = _mix(self.seed, _TRADE)
        # Pure functions of their argument, so caching them is safe and makes day windows cheap.
        self._log_offset_at_minute = functools.lru_cache(maxsize=1 << 16)(self._compute_log_offset)
        self.trades_in_minute = functools.lru_cache(maxsize=1 << 12)(self._compute_trades_in_minute)

    # -- formatting -------------------------------------------------------------------------

    def price_str(self, ticks: int) -> str:
        return decimal_str(ticks, self.spec.counter_decimals)

    def amount_str(self, units: int) -> str:
        return decimal_str(units, self.spec.base_decimals)

    def price_ticks(self, text: str) -> int:
        return int(Decimal(text).scaleb(self.spec.counter_decimals))

    # -- the price walk ----------------------------------------------------------------------

    def _compute_log_offset(self, minute: int) -> float:
        """Log-price offset at a whole minute: layers of smoothly interpolated seeded noise,
        each layer's amplitude growing with the square root of its time scale, as a random
        walk's does. Any instant, past or future, costs the same to evaluate."""
        t = minute * 60
        offset = 0.0
        for key, amplitude, scale in zip(self._octave_keys, self._amplitudes, OCTAVE_SCALES):
            left, remainder = divmod(t, scale)
            a = 2 * _keyed_unit(key, left) - 1
            if remainder:
                fraction = remainder / scale
                b = 2 * _keyed_unit(key, left + 1) - 1
                a += (b - a) * fraction * fraction * (3 - 2 * fraction)
            offset += a * amplitude
        return offset

    def mid_ticks(self, at: float) -> float:
        """The mid price at `at`, in ticks (straight lines between whole minutes)."""
        minutes = at / 60
        minute = math.floor(minutes)
        fraction = minutes - minute
        offset = self._log_offset_at_minute(minute)
        if fraction:
            offset += (self._log_offset_at_minute(minute + 1) - offset) * fraction
        return self.spec.base_price * math.exp(offset) * self.price_scale

    # -- book ---------------------------------------------------------------------------------

    def book(self, now: float, depth: int = BOOK_DEPTH) -> Book:
        """The book during the second `now` falls in (the same for every request that second)."""
        second = math.floor(now)
        rng = random.Random(_mix(self.seed, _BOOK, second))
        mid = self.mid_ticks(second)
        spread = max(1, round(mid * SPREAD_FRACTION * (0.5 + rng.random())))
        best_bid = max(1, math.floor(mid - spread / 2))
        max_gap = max(1, round(mid * LEVEL_GAP_FRACTION))
        bids, asks = [], []
        price = best_bid
        while len(bids) < depth and price > 0:
            bids.append((price, self._level_amount(rng)))
            price -= rng.randint(1, max_gap)
        price = best_bid + spread
        while len(asks) < depth:
            asks.append((price, self._level_amount(rng)))
            price += rng.randint(1, max_gap)
        return Book(second, bids, asks)

    def _level_amount(self, rng: random.Random) -> int:
        amount = self.spec.typical_amount * rng.lognormvariate(0, 1)
        return max(1, round(amount * self.amount_scale))

    # -- trades -------------------------------------------------------------------------------

    def _compute_trades_in_minute(self, minute: int) -> tuple[Trade, ...]:
        """All trades of one minute, oldest first. Each second draws its own number of trades,
        so a trade's existence and tid depend only on its second, never on the window asked."""
        rate = self.spec.trades_per_minute / 60
        trades = []
        for second in range(minute * 60, minute * 60 + 60):
            # One hash per (second, n, purpose): purpose 0 = count, 1 = side, 2 = size.
            draw = second << 5
            count = _poisson(rate, _keyed_unit(self._trade_key, draw), MAX_TRADES_PER_SECOND - 1)
            for n in range(count):
                at = second + (n + 1) / (count + 1)
                side = 0 if _keyed_unit(self._trade_key, draw | n << 2 | 1) < 0.5 else 1
                mid = self.mid_ticks(at)
                half_spread = max(1.0, mid * SPREAD_FRACTION) / 2
                # buys lift the ask, sells hit the bid
                price = max(1, round(mid + half_spread if side == 0 else mid - half_spread))
                size = self.spec.typical_amount * math.exp(
                    3 * (_keyed_unit(self._trade_key, draw | n << 2 | 2) - 0.5))
                tid = ((second - TID_EPOCH) * MAX_PAIRS + self.index) * MAX_TRADES_PER_SECOND + n
                trades.append(Trade(tid, at, price, max(1, round(size * self.amount_scale)), side))
        return tuple(trades)

    def trades(self, now: float, window: int) -> list[Trade]:
        """Trades of the last `window` seconds (up to now), newest first (Bitstamp's order)."""
        oldest = now - window
        found = []
        for minute in range(math.floor(now / 60), math.floor(oldest / 60) - 1, -1):
            found.extend(t for t in reversed(self.trades_in_minute(minute)) if oldest < t.at <= now)
        return found

    def last_trade(self, now: float) -> Trade | None:
        recent = self.trades(now, 60)
        return recent[0] if recent else next(iter(self.trades(now, 3600)), None)

    # -- candles ------------------------------------------------------------------------------

    def candle(self, step: int, start: int, now: float) -> Candle:
        """The candle [start, start + step), cut at `now` if it is still running."""
        end = min(start + step, now)
        # A few whole minutes across the candle (cheap: one cached walk value each), then its end.
        inner = max(1, min(4, step // 60 - 1))
        times = [start + math.floor((end - start) * i / (inner + 1) / 60) * 60
                 for i in range(inner + 1)]
        mids = [self.mid_ticks(t) for t in times] + [self.mid_ticks(end)]
        # Trades poke a little past the sampled path: wicks of up to a minute's volatility.
        wick = mids[0] * self.spec.daily_volatility * math.sqrt(60 / 86400)
        high = max(mids) + wick * _unit(self.seed, _CANDLE, step, start, 1)
        low = min(mids) - wick * _unit(self.seed, _CANDLE, step, start, 2)
        open_, close = round(mids[0]), round(mids[-1])
        volume = (self.spec.typical_amount * self.spec.trades_per_minute * (end - start) / 60
                  * (0.5 + _unit(self.seed, _CANDLE, step, start, 3)))
        return Candle(start, open_, max(math.ceil(high), open_, close),
                      max(1, min(math.floor(low), open_, close)), close,
                      round(volume * self.amount_scale))

    def candles(self, step: int, limit: int, now: float, start: int | None = None,
                end: int | None = None, exclude_current: bool = False) -> list[Candle]:
        """Oldest first, ending with the running candle unless told otherwise. As Bitstamp
        documents: `end` wins over `start`; with neither, the data runs up to now."""
        current = math.floor(now / step) * step
        if end is not None:
            last = min(current, math.floor(end / step) * step)
        elif start is not None:
            last = min(current, math.ceil(start / step) * step + (limit - 1) * step)
        else:
            last = current
        if exclude_current and last == current:
            last -= step
        first = last - (limit - 1) * step
        return [self.candle(step, t, now) for t in range(first, last + step, step)]


# -------------------------------------------------------------------------------------------
# Documents in Bitstamp's shapes

def book_document(market: Market, now: float, book: Book | None = None) -> dict[str, Any]:
    book = market.book(now) if book is None else book
    return {
        "timestamp": str(math.floor(now)),
        "microtimestamp": str(math.floor(now * 1_000_000)),
        "bids": [[market.price_str(p), market.amount_str(a)] for p, a in book.bids],
        "asks": [[market.price_str(p), market.amount_str(a)] for p, a in book.asks],
    }


def trade_document(market: Market, trade: Trade) -> dict[str, str]:
    return {"date": str(math.floor(trade.at)), "tid": str(trade.tid),
            "amount": market.amount_str(trade.amount), "price": market.price_str(trade.price),
            "type": str(trade.side)}


def transactions_document(market: Market, now: float, window: int) -> list[dict[str, str]]:
    return [trade_document(market, t) for t in market.trades(now, window)]


def ticker_document(market: Market, now: float) -> dict[str, str]:
    book = market.book(now)
    last = market.last_trade(now)
    last_price = last.price if last else round(market.mid_ticks(now))
    open_of_day = round(market.mid_ticks(math.floor(now / 86400) * 86400))
    open_24 = round(market.mid_ticks(now - 86400))
    day = market.candles(900, 96, now)   # the last 24 hours in quarter hours
    volume = sum(c.volume for c in day)
    vwap = (round(sum((c.high + c.low + c.close) / 3 * c.volume for c in day) / volume)
            if volume else last_price)
    return {
        "timestamp": str(math.floor(now)),
        "open": market.price_str(open_of_day),
        "high": market.price_str(max(max(c.high for c in day), last_price, open_of_day)),
        "low": market.price_str(min(min(c.low for c in day), last_price, open_of_day)),
        "last": market.price_str(last_price),
        "volume": market.amount_str(volume),
        "vwap": market.price_str(vwap),
        "bid": market.price_str(book.bids[0][0]),
        "ask": market.price_str(book.asks[0][0]),
        "side": str(last.side if last else 0),
        "open_24": market.price_str(open_24),
        "percent_change_24": f"{(last_price - open_24) / open_24 * 100:.2f}",
    }


def ohlc_document(market: Market, candles: Sequence[Candle]) -> dict[str, Any]:
    return {"data": {"pair": market.spec.name, "ohlc": [
        {"timestamp": str(c.timestamp), "open": market.price_str(c.open),
         "high": market.price_str(c.high), "low": market.price_str(c.low),
         "close": market.price_str(c.close), "volume": market.amount_str(c.volume)}
        for c in candles]}}


def trading_pairs_document(markets: Sequence[Market]) -> list[dict[str, Any]]:
    return [{"trading": "Enabled", "base_decimals": m.spec.base_decimals,
             "url_symbol": m.spec.url_symbol, "name": m.spec.name,
             "instant_and_market_orders": "Enabled", "minimum_order": m.spec.minimum_order,
             "counter_decimals": m.spec.counter_decimals, "description": m.spec.description}
            for m in markets]


def error_response(reason: str, status: int = 400, response_code: str = "400.002") -> SimResponse:
    # Bitstamp's v2 error envelope (fixtures/bitstamp/rest_error_response_code.json).
    return json_response({"status": "error", "reason": reason, "response_code": response_code},
                         status)


class BadParameter(ValueError):
    pass


@dataclass(frozen=True)
class OhlcQuery:
    step: int
    limit: int
    start: int | None = None
    end: int | None = None
    exclude_current: bool = False

    @classmethod
    def parse(cls, query: dict[str, str]) -> "OhlcQuery":
        def integer(name: str) -> int | None:
            if name not in query:
                return None
            try:
                return int(query[name])
            except ValueError:
                raise BadParameter(f"{name} must be an integer") from None

        step, limit = integer("step"), integer("limit")
        if step not in OHLC_STEPS:
            raise BadParameter(f"step must be one of {', '.join(map(str, OHLC_STEPS))}")
        if limit is None or not 1 <= limit <= OHLC_MAX_LIMIT:
            raise BadParameter(f"limit must be between 1 and {OHLC_MAX_LIMIT}")
        exclude = query.get("exclude_current_candle", "false").lower() == "true"
        return cls(step, limit, integer("start"), integer("end"), exclude)


# -------------------------------------------------------------------------------------------
# Faulty variants of each endpoint's document (see BitstampExchange.fault_body)

def _nan_json(endpoint: str, doc: Any, market: Market) -> Any:
    nan = float("nan")   # json.dumps writes it as the bare token NaN
    if endpoint == "order_book":
        doc["bids"][0][0] = nan
    elif endpoint == "transactions":
        doc[0]["price"] = nan
    elif endpoint == "ticker":
        doc["last"] = nan
    elif endpoint == "ohlc":
        doc["data"]["ohlc"][-1]["close"] = nan
    else:
        doc[0]["counter_decimals"] = nan
    return doc


def _wrong_shape(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # levels as objects instead of [price, amount]
        for side in ("bids", "asks"):
            doc[side] = [{"price": p, "amount": a} for p, a in doc[side]]
        return doc
    if endpoint == "ticker":         # a list where an object belongs
        return [doc]
    if endpoint == "ohlc":           # rows as arrays, as another exchange would send them
        doc["data"]["ohlc"] = [list(row.values()) for row in doc["data"]["ohlc"]]
        return doc
    return {"foo": 1}                # an object where a list belongs


def _crossed(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # every bid moved up to 1 tick above the best ask
        best_bid = market.price_ticks(doc["bids"][0][0])
        shift = market.price_ticks(doc["asks"][0][0]) - best_bid + 1
        doc["bids"] = [[market.price_str(market.price_ticks(p) + shift), a] for p, a in doc["bids"]]
        return doc
    if endpoint == "ticker":
        doc["bid"], doc["ask"] = doc["ask"], doc["bid"]
        return doc
    return None


def _unsorted(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # the first ten bids ascending
        doc["bids"][:10] = reversed(doc["bids"][:10])
        return doc
    if endpoint == "transactions":   # oldest first
        return doc[::-1]
    if endpoint == "ohlc":           # newest first
        doc["data"]["ohlc"].reverse()
        return doc
    return None


def _bad_values(endpoint: str, doc: Any, market: Market) -> Any:
    zero = market.price_str(0)
    if endpoint == "order_book":
        doc["timestamp"] = doc["microtimestamp"] = "0"
        doc["bids"][0][1] = "-" + doc["bids"][0][1]
        doc["asks"][0][0] = zero
    elif endpoint == "transactions":
        doc[0].update(date="0", price=zero, amount="-" + doc[0]["amount"])
    elif endpoint == "ticker":
        doc.update(timestamp="0", last=zero, volume="-" + doc["volume"])
    elif endpoint == "ohlc":
        rows = doc["data"]["ohlc"]
        rows[0]["timestamp"] = "0"
        last = rows[-1]
        high, low = market.price_ticks(last["high"]), market.price_ticks(last["low"])
        last["high"], last["low"] = market.price_str(low), market.price_str(high + 1)  # high < low
        last["volume"] = "-" + last["volume"]
    else:
        doc[0]["base_decimals"] = -1
    return doc


FAULTY_DOCUMENTS: dict[str, Callable[[str, Any, Market], Any]] = {
    "nan_json": _nan_json, "wrong_shape": _wrong_shape, "crossed": _crossed,
    "unsorted": _unsorted, "bad_values": _bad_values,
}


# -------------------------------------------------------------------------------------------
# The exchange as the server sees it

class BitstampExchange:
    """Bitstamp's public REST v2 market data. `clock` is injectable so tests can move time."""

    name = "bitstamp"

    def __init__(self, clock: Callable[[], float] = time.time,
                 pairs: Sequence[PairSpec] = PAIRS) -> None:
        if len(pairs) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} pairs (tids are numbered per pair)")
        self.clock = clock
        self.markets = {spec.url_symbol: Market(spec, i) for i, spec in enumerate(pairs)}

    def routes(self) -> list[Route]:
        pair = r"(?P<pair>[^/]+)"
        return [
            Route(rf"/api/v2/order_book/{pair}", self.order_book, "order_book"),
            Route(rf"/api/v2/transactions/{pair}", self.transactions, "transactions"),
            Route(rf"/api/v2/ticker/{pair}", self.ticker, "ticker"),
            Route(rf"/api/v2/ohlc/{pair}", self.ohlc, "ohlc"),
            Route(r"/api/v2/trading-pairs-info", self.trading_pairs_info, "trading_pairs_info"),
        ]

    # -- endpoints ------------------------------------------------------------------------------

    def order_book(self, request: SimRequest) -> SimResponse:
        market = self.markets.get(request.path_params["pair"])
        if market is None:
            return not_found_response()   # what Bitstamp does for unknown pairs: a 404 page
        return json_response(book_document(market, self.clock()))

    def transactions(self, request: SimRequest) -> SimResponse:
        market = self.markets.get(request.path_params["pair"])
        if market is None:
            return not_found_response()
        window = TRANSACTION_WINDOWS.get(request.query.get("time", "hour"))
        if window is None:
            return error_response("time must be one of minute, hour, day")
        return json_response(transactions_document(market, self.clock(), window))

    def ticker(self, request: SimRequest) -> SimResponse:
        market = self.markets.get(request.path_params["pair"])
        if market is None:
            return not_found_response()
        return json_response(ticker_document(market, self.clock()))

    def ohlc(self, request: SimRequest) -> SimResponse:
        market = self.markets.get(request.path_params["pair"])
        if market is None:
            return not_found_response()
        try:
            query = OhlcQuery.parse(request.query)
        except BadParameter as error:
            return error_response(str(error))
        candles = market.candles(query.step, query.limit, self.clock(), query.start, query.end,
                                 query.exclude_current)
        return json_response(ohlc_document(market, candles))

    def trading_pairs_info(self, request: SimRequest) -> SimResponse:
        return json_response(trading_pairs_document(list(self.markets.values())))

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            return json.dumps({"status": "error", "reason": params.get("reason") or "Invalid pair",
                               "response_code": params.get("response_code") or "400.002"}).encode()
        mutate = FAULTY_DOCUMENTS.get(kind)
        if mutate is None or request.endpoint is None:
            return None
        market, now = self._fault_market(request), self.clock()
        faulty = mutate(request.endpoint, self._fault_document(request, market, now), market)
        return None if faulty is None else json.dumps(faulty).encode()

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        market, now = self._fault_market(request), self.clock()
        if request.endpoint == "order_book":   # the normal bids, then asks without end
            book = market.book(now)
            head = json.dumps(book_document(market, now, Book(book.second, book.bids, [])))
            head = head[: head.rindex("]")]     # reopen the empty asks list
            return HugeDocument(head.encode(), _endless_asks(market, book), b"]}")
        if request.endpoint == "transactions":
            return HugeDocument(b"[", _endless_trades(market, now), b"]")
        return None

    def _fault_market(self, request: SimRequest) -> Market:
        # Faults are wanted even on a pair Bitstamp does not list: render them for btcusd then.
        return (self.markets.get(request.path_params.get("pair", ""))
                or next(iter(self.markets.values())))

    def _fault_document(self, request: SimRequest, market: Market, now: float) -> Any:
        """The endpoint's normal document, built leniently (bad query -> defaults) and big
        enough for every fault to have something to break."""
        endpoint = request.endpoint
        if endpoint == "order_book":
            return book_document(market, now)
        if endpoint == "transactions":
            window = TRANSACTION_WINDOWS.get(request.query.get("time", ""), 3600)
            trades = transactions_document(market, now, window)
            return trades if len(trades) >= 2 else transactions_document(market, now, 86400)
        if endpoint == "ticker":
            return ticker_document(market, now)
        if endpoint == "ohlc":
            try:
                query = OhlcQuery.parse(request.query)
                step, limit = query.step, max(2, query.limit)
            except BadParameter:
                step, limit = 60, 10
            return ohlc_document(market, market.candles(step, limit, now))
        return trading_pairs_document(list(self.markets.values()))


def _endless_asks(market: Market, book: Book) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending from the best ask, produced fast: past the first
    few, each run of 100 levels shares all but its last two digits, so it is one str.replace
    on a template (20 MiB in a fraction of a second)."""
    amounts = [market.amount_str(amount) for _, amount in book.asks[:7]]
    decimals = market.spec.counter_decimals

    def level(price: int) -> str:
        return f'["{decimal_str(price, decimals)}", "{amounts[price % 7]}"]'

    price = book.asks[0][0]
    if decimals < 2:   # the last two digits would straddle the decimal point
        for price in itertools.count(price):
            yield level(price).encode()
    aligned = -(-price // 100) * 100
    if aligned > price:
        yield ", ".join(level(p) for p in range(price, aligned)).encode()
    template = ", ".join(f'["@{k:02d}", "{amounts[k % 7]}"]' for k in range(100))
    for base in itertools.count(aligned, 100):
        yield template.replace("@", decimal_str(base, decimals)[:-2]).encode()


def _endless_trades(market: Market, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades (tids and dates going down), priced like the last hour's,
    `batch` per item (formatted by hand: json.dumps per trade is what makes it slow)."""
    recent = market.trades(now, 3600) or [Trade(TID_EPOCH, now, round(market.mid_ticks(now)), 1, 0)]
    newest_tid, newest_date = recent[0].tid, math.floor(recent[0].at)
    models = [(market.amount_str(t.amount), market.price_str(t.price), t.side) for t in recent]
    for first in itertools.count(0, batch):
        trades = []
        for n in range(first, first + batch):
            amount, price, side = models[n % len(models)]
            trades.append(f'{{"date": "{newest_date - n // 4}", "tid": "{newest_tid - n}", '
                          f'"amount": "{amount}", "price": "{price}", "type": "{side}"}}')
        yield ", ".join(trades).encode()


SIM_REST = BitstampExchange   # found by proj.sim.default_exchanges()
