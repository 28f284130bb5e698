"""Kraken's public REST market data (https://api.kraken.com/0/public/...), as served by the
simulator.

Shapes come from Kraken's documentation (docs.kraken.com/api/docs/rest-api) and real recorded
bodies (fixtures/kraken/rest_*.json); nothing is shared with the collector's parsers.

- Pairs are asked for by altname (XBTUSD) or canonical name (XXBTZUSD) in `pair=`, and every
  answer is {"error": [...], "result": {CANONICAL: ...}}: XBTUSD is answered as XXBTZUSD,
  USDTUSD as USDTZUSD, XBTUSDT as XBTUSDT. Errors are answered with HTTP 200 and no result:
  {"error": ["EQuery:Unknown asset pair"]}.
- Depth `count` (1..500, default 100): levels [price, volume, level time]. Trades `count`
  (1..1000, default 1000) and `since` (a nanosecond cursor or seconds): rows [price, volume,
  time (a JSON float), "b"/"s", "m"/"l", "", trade_id], oldest first, with the "last" cursor.
  Ticker: a/b/c/v/p/t/l/h/o. OHLC `interval` (minutes: 1 5 15 30 60 240 1440 10080 21600)
  and `since`: the last 720 candles [time, o, h, l, c, vwap, volume, count], the running one
  last, "last" = the newest committed candle's time.
- Prices in Depth, Trades and Ticker carry at least five decimals ("105944.30000"), in OHLC the
  pair's own (pair_decimals, "106038.2"), as in the recordings.
- `rate_limit=(calls, seconds)` turns on a sliding-window limit of Kraken's kind: past it the
  answer is {"error": ["EGeneral:Too many requests"]} (HTTP `rate_limit_status`, 200 by
  default, as Kraken reports errors). Off by default.

Every number comes from the same per-pair random walk as the Bitstamp simulator
(bitstamp.Market: a pure function of pair and time), seeded by Kraken's own altnames.
"""
from __future__ import annotations

import collections
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from .bitstamp import Book, Candle, Market, PairSpec, Trade, decimal_str
from .server import HugeDocument, Route, SimRequest, SimResponse, json_response


@dataclass(frozen=True)
class KrakenPair:
    altname: str          # XBTUSD: what requests name
    key: str              # XXBTZUSD: what answers are keyed by
    wsname: str           # BTC/USD: the websocket v2 name
    base: str             # XXBT: Kraken's asset names (AssetPairs)
    quote: str            # ZUSD
    spec: PairSpec        # counter_decimals = pair_decimals, base_decimals = lot_decimals


def _pair(altname: str, key: str, wsname: str, base: str, quote: str, price_decimals: int,
          level: float, volatility: float, trades_per_minute: float, amount: float) -> KrakenPair:
    return KrakenPair(altname, key, wsname, base, quote,
                      PairSpec(altname, wsname, wsname, 8, price_decimals, "", level, volatility,
                               trades_per_minute, amount))


# Names and decimals as in Kraken's AssetPairs (fixtures/kraken/rest_asset_pairs.json; the
# websocket v2 names use BTC and DOGE); levels, volatility and activity are only plausible.
PAIRS: tuple[KrakenPair, ...] = (
    _pair("XBTUSD", "XXBTZUSD", "BTC/USD", "XXBT", "ZUSD", 1, 65000, 0.03, 12, 0.05),
    _pair("XBTEUR", "XXBTZEUR", "BTC/EUR", "XXBT", "ZEUR", 1, 60000, 0.03, 6, 0.05),
    _pair("XBTUSDT", "XBTUSDT", "BTC/USDT", "XXBT", "USDT", 1, 65000, 0.03, 6, 0.03),
    _pair("ETHUSD", "XETHZUSD", "ETH/USD", "XETH", "ZUSD", 2, 3300, 0.04, 8, 0.8),
    _pair("ETHUSDT", "ETHUSDT", "ETH/USDT", "XETH", "USDT", 2, 3300, 0.04, 3, 0.5),
    _pair("ETHXBT", "XETHXXBT", "ETH/BTC", "XETH", "XXBT", 5, 0.05, 0.025, 2, 1.0),
    _pair("XDGUSD", "XDGUSD", "DOGE/USD", "XXDG", "ZUSD", 7, 0.12, 0.05, 4, 3000),
    _pair("USDTUSD", "USDTZUSD", "USDT/USD", "USDT", "ZUSD", 5, 1.0, 0.0005, 3, 2000),
    _pair("SOLUSD", "SOLUSD", "SOL/USD", "SOL", "ZUSD", 2, 150, 0.05, 5, 5),
)

OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)   # minutes
OHLC_ROWS = 720
DEPTH_DEFAULT, DEPTH_MAX = 100, 500
TRADES_DEFAULT = TRADES_MAX = 1000
REST_PRICE_DECIMALS = 5     # Depth, Trades and Ticker prices: at least this many decimals
UNKNOWN_PAIR = "EQuery:Unknown asset pair"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
TOO_MANY_REQUESTS = "EGeneral:Too many requests"


# -------------------------------------------------------------------------------------------
# Formatting

class KrakenMarket(Market):
    """bitstamp.Market with Kraken's names and number formats."""

    def __init__(self, pair: KrakenPair, index: int) -> None:
        super().__init__(pair.spec, index)
        self.pair = pair

    def rest_price(self, ticks: int) -> str:
        """Depth/Trades/Ticker prices: "105944.30000"."""
        decimals = self.spec.counter_decimals
        if decimals >= REST_PRICE_DECIMALS:
            return decimal_str(ticks, decimals)
        return decimal_str(ticks * 10 ** (REST_PRICE_DECIMALS - decimals), REST_PRICE_DECIMALS)

    def depth_volume(self, units: int) -> str:
        """Depth volumes as recorded: trailing zeros dropped, at least three decimals ("0.136")."""
        text = decimal_str(units, self.spec.base_decimals)
        whole, _, fraction = text.partition(".")
        return f"{whole}.{fraction.rstrip('0').ljust(3, '0')}"


def error_document(*messages: str) -> dict[str, Any]:
    return {"error": list(messages)}


def envelope(market: KrakenMarket, value: Any, **extra: Any) -> dict[str, Any]:
    return {"error": [], "result": {market.pair.key: value, **extra}}


def depth_document(market: KrakenMarket, now: float, count: int = DEPTH_DEFAULT,
                   book: Book | None = None) -> dict[str, Any]:
    # Always drawn DEPTH_MAX deep, so that every count (and the ticker) sees the same book.
    book = market.book(now, DEPTH_MAX) if book is None else book
    second = book.second

    def levels(side: list[tuple[int, int]], salt: int) -> list[list[Any]]:
        # A level's time: when it last changed, up to a minute back (seeded, so stable).
        return [[market.rest_price(p), market.depth_volume(a),
                 second - (p * 7919 + salt) % 60] for p, a in side[:count]]

    return envelope(market, {"asks": levels(book.asks, 1), "bids": levels(book.bids, 2)})


TIME_UNITS = 10_000   # trade times are written with four decimals: units of 100 µs


def _units(trade: Trade) -> int:
    """A trade's time as written, in units of 1/TIME_UNITS s (what `since` compares with)."""
    return round(trade.at * TIME_UNITS)


def trade_row(market: KrakenMarket, trade: Trade) -> list[Any]:
    return [market.rest_price(trade.price), market.amount_str(trade.amount),
            _units(trade) / TIME_UNITS, "b" if trade.side == 0 else "s",
            "m" if trade.tid % 3 == 0 else "l", "", trade.tid]


def _cursor(trade: Trade) -> str:
    """Kraken's "last": the newest trade's time in nanoseconds, as a string."""
    return str(_units(trade) * (10 ** 9 // TIME_UNITS))


def recent_trades(market: KrakenMarket, now: float, count: int = TRADES_DEFAULT,
                  since: int | None = None) -> list[Trade]:
    """Oldest first: the last `count` trades, or the first `count` written later than `since`
    (in units of 1/TIME_UNITS s)."""
    if since is not None:
        window = min(86400.0, max(1.0, now - since / TIME_UNITS + 1))
        return [t for t in reversed(market.trades(now, window)) if _units(t) > since][:count]
    found: list[Trade] = []
    for window in (3600, 6 * 3600, 86400):
        found = market.trades(now, window)
        if len(found) >= count:
            break
    return list(reversed(found[:count]))


def trades_document(market: KrakenMarket, now: float, count: int = TRADES_DEFAULT,
                    since: int | None = None) -> dict[str, Any]:
    trades = recent_trades(market, now, count, since)
    last = (_cursor(trades[-1]) if trades else
            str((since if since is not None else math.floor(now * TIME_UNITS))
                * (10 ** 9 // TIME_UNITS)))
    return envelope(market, [trade_row(market, t) for t in trades], last=last)


def _vwap(candles: Sequence[Candle], fallback: int) -> int:
    volume = sum(c.volume for c in candles)
    if not volume:
        return fallback
    return round(sum((c.high + c.low + c.close) / 3 * c.volume for c in candles) / volume)


def _trade_count(market: KrakenMarket, candles: Sequence[Candle]) -> int:
    return sum(max(1, round(c.volume / market.amount_scale / market.spec.typical_amount))
               for c in candles)


def ticker_document(market: KrakenMarket, now: float) -> dict[str, Any]:
    book = market.book(now, DEPTH_MAX)
    last = market.last_trade(now)
    last_price = last.price if last else round(market.mid_ticks(now))
    last_volume = last.amount if last else market.amount_scale
    midnight = math.floor(now / 86400) * 86400
    day = market.candles(900, 96, now)                                  # the last 24 hours
    today = market.candles(900, max(1, math.ceil((now - midnight) / 900)), now)
    open_today = round(market.mid_ticks(midnight))

    def pair_of(values: Callable[[Sequence[Candle]], Any]) -> list[Any]:
        return [values(today), values(day)]

    return envelope(market, {
        "a": [market.rest_price(book.asks[0][0]), "1", "1.000"],
        "b": [market.rest_price(book.bids[0][0]), "1", "1.000"],
        "c": [market.rest_price(last_price), market.amount_str(last_volume)],
        "v": pair_of(lambda cs: market.amount_str(sum(c.volume for c in cs))),
        "p": pair_of(lambda cs: market.rest_price(_vwap(cs, last_price))),
        "t": pair_of(lambda cs: _trade_count(market, cs)),
        "l": pair_of(lambda cs: market.rest_price(min(min(c.low for c in cs), last_price))),
        "h": pair_of(lambda cs: market.rest_price(max(max(c.high for c in cs), last_price))),
        "o": market.rest_price(open_today),
    })


def ohlc_row(market: KrakenMarket, candle: Candle) -> list[Any]:
    vwap = min(max(round((candle.high + candle.low + candle.close) / 3), candle.low), candle.high)
    return [candle.timestamp, market.price_str(candle.open), market.price_str(candle.high),
            market.price_str(candle.low), market.price_str(candle.close), market.price_str(vwap),
            market.amount_str(candle.volume), _trade_count(market, [candle])]


def ohlc_document(market: KrakenMarket, now: float, interval: int,
                  since: int | None = None) -> dict[str, Any]:
    step = interval * 60
    candles = market.candles(step, OHLC_ROWS, now)
    if since is not None:
        candles = [c for c in candles if c.timestamp > since] or candles[-1:]
    committed = candles[-2].timestamp if len(candles) > 1 else candles[-1].timestamp - step
    return envelope(market, [ohlc_row(market, c) for c in candles], last=committed)


def asset_pairs_document(markets: Sequence[KrakenMarket]) -> dict[str, Any]:
    return {"error": [], "result": {m.pair.key: {
        "altname": m.pair.altname,
        # AssetPairs' wsname is the websocket v1 name (XBT/USD, XDG/USD)
        "wsname": m.pair.wsname.replace("BTC", "XBT").replace("DOGE", "XDG"),
        "aclass_base": "currency", "base": m.pair.base, "aclass_quote": "currency",
        "quote": m.pair.quote, "pair_decimals": m.spec.counter_decimals,
        "lot_decimals": m.spec.base_decimals, "lot_multiplier": 1, "status": "online",
    } for m in markets}}


# -------------------------------------------------------------------------------------------
# Faulty variants of each endpoint's document (see KrakenExchange.fault_body)

def _value(doc: dict[str, Any]) -> Any:
    result = doc["result"]
    return result[next(k for k in result if k != "last")]


def _set_value(doc: dict[str, Any], value: Any) -> dict[str, Any]:
    result = doc["result"]
    result[next(k for k in result if k != "last")] = value
    return doc


def _nan_json(endpoint: str, doc: Any, market: KrakenMarket) -> Any:
    nan = float("nan")   # json.dumps writes the bare token NaN
    value = _value(doc)
    if endpoint == "depth":
        value["bids"][0][0] = nan
    elif endpoint in ("trades", "ohlc"):
        value[-1][1] = nan
    elif endpoint == "ticker":
        value["c"][0] = nan
    return doc


def _wrong_shape(endpoint: str, doc: Any, market: KrakenMarket) -> Any:
    value = _value(doc)
    if endpoint == "depth":      # levels as objects instead of [price, volume, time]
        for side in ("bids", "asks"):
            value[side] = [{"price": p, "volume": v, "timestamp": t} for p, v, t in value[side]]
        return doc
    if endpoint == "ticker":     # a list where an object belongs
        return _set_value(doc, [value])
    if endpoint in ("trades", "ohlc"):   # rows as objects, as another exchange sends them
        return _set_value(doc, [dict(enumerate(row)) for row in value])
    return {"foo": 1}


def _crossed(endpoint: str, doc: Any, market: KrakenMarket) -> Any:
    value = _value(doc)
    if endpoint == "depth":      # every bid moved up to one tick above the best ask
        ticks = market.price_ticks
        shift = ticks(value["asks"][0][0]) - ticks(value["bids"][0][0]) + 1
        value["bids"] = [[market.rest_price(ticks(p) + shift), v, t] for p, v, t in value["bids"]]
        return doc
    if endpoint == "ticker":
        value["a"], value["b"] = value["b"], value["a"]
        return doc
    return None


def _unsorted(endpoint: str, doc: Any, market: KrakenMarket) -> Any:
    value = _value(doc)
    if endpoint == "depth":      # the first ten bids ascending
        value["bids"][:10] = reversed(value["bids"][:10])
        return doc
    if endpoint in ("trades", "ohlc"):   # newest first
        value.reverse()
        return doc
    return None


def _bad_values(endpoint: str, doc: Any, market: KrakenMarket) -> Any:
    value = _value(doc)
    zero = market.rest_price(0)
    if endpoint == "depth":
        value["bids"][0][1] = "-" + value["bids"][0][1]
        value["asks"][0][0] = zero
    elif endpoint == "trades":
        value[0][0], value[0][1], value[0][2] = zero, "-" + value[0][1], 0
    elif endpoint == "ticker":
        value["c"][0] = zero
        value["v"][1] = "-" + value["v"][1]
    elif endpoint == "ohlc":
        value[0][0] = 0
        last = value[-1]
        last[2], last[3] = last[3], market.price_str(market.price_ticks(last[2]) + 1)  # high < low
        last[6] = "-" + last[6]
    return doc


FAULTY_DOCUMENTS: dict[str, Callable[[str, Any, KrakenMarket], Any]] = {
    "nan_json": _nan_json, "wrong_shape": _wrong_shape, "crossed": _crossed,
    "unsorted": _unsorted, "bad_values": _bad_values,
}


class BadArguments(ValueError):
    pass


def _int_arg(query: dict[str, str], name: str, default: int | None, low: int, high: int
             ) -> int | None:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise BadArguments(name) from None
    if not low <= value <= high:
        raise BadArguments(name)
    return value


def _since_units(query: dict[str, str], units: int) -> int | None:
    """`since` in units of 1/`units` s: Kraken's nanosecond cursor, or (decimal) seconds."""
    text = query.get("since")
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise BadArguments("since") from None
    if not value.is_finite() or value < 0:
        raise BadArguments("since")
    if value > 10 ** 12:   # a nanosecond cursor
        value /= 10 ** 9
    return int(value * units)


# -------------------------------------------------------------------------------------------
# The exchange as the server sees it

class KrakenExchange:
    """Kraken's public REST market data. `clock` is injectable so tests can move time."""

    name = "kraken"

    def __init__(self, clock: Callable[[], float] = time.time,
                 pairs: Sequence[KrakenPair] = PAIRS,
                 rate_limit: tuple[int, float] | None = None, rate_limit_status: int = 200
                 ) -> None:
        self.clock = clock
        self.markets: dict[str, KrakenMarket] = {}
        for index, pair in enumerate(pairs):
            market = KrakenMarket(pair, index)
            self.markets[pair.altname] = self.markets[pair.key] = market
        self.rate_limit = rate_limit
        self.rate_limit_status = rate_limit_status
        self._calls: collections.deque[float] = collections.deque()
        self._calls_lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [
            Route(r"/0/public/Depth", self.depth, "depth", ("GET", "POST")),
            Route(r"/0/public/Trades", self.trades, "trades", ("GET", "POST")),
            Route(r"/0/public/Ticker", self.ticker, "ticker", ("GET", "POST")),
            Route(r"/0/public/OHLC", self.ohlc, "ohlc", ("GET", "POST")),
            Route(r"/0/public/AssetPairs", self.asset_pairs, "asset_pairs", ("GET", "POST")),
            Route(r"/0/public/Time", self.server_time, "time", ("GET", "POST")),
        ]

    @property
    def unique_markets(self) -> list[KrakenMarket]:
        return list({id(m): m for m in self.markets.values()}.values())

    # -- endpoints ------------------------------------------------------------------------------

    def depth(self, request: SimRequest) -> SimResponse:
        return self._answer(request, lambda market, now: depth_document(
            market, now, _int_arg(request.query, "count", DEPTH_DEFAULT, 1, DEPTH_MAX)))

    def trades(self, request: SimRequest) -> SimResponse:
        return self._answer(request, lambda market, now: trades_document(
            market, now, _int_arg(request.query, "count", TRADES_DEFAULT, 1, TRADES_MAX),
            _since_units(request.query, TIME_UNITS)))

    def ticker(self, request: SimRequest) -> SimResponse:
        return self._answer(request, ticker_document)

    def ohlc(self, request: SimRequest) -> SimResponse:
        def document(market: KrakenMarket, now: float) -> dict[str, Any]:
            interval = _int_arg(request.query, "interval", 1, 1, max(OHLC_INTERVALS))
            if interval not in OHLC_INTERVALS:
                raise BadArguments("interval")
            return ohlc_document(market, now, interval, _since_units(request.query, 1))
        return self._answer(request, document)

    def asset_pairs(self, request: SimRequest) -> SimResponse:
        limited = self._rate_limited()
        return limited or json_response(asset_pairs_document(self.unique_markets))

    def server_time(self, request: SimRequest) -> SimResponse:
        limited = self._rate_limited()
        if limited is not None:
            return limited
        now = self.clock()
        return json_response({"error": [], "result": {
            "unixtime": math.floor(now),
            "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))}})

    def _answer(self, request: SimRequest,
                build: Callable[[KrakenMarket, float], dict[str, Any]]) -> SimResponse:
        limited = self._rate_limited()
        if limited is not None:
            return limited
        pair = request.query.get("pair", "")
        if not pair:
            return json_response(error_document(INVALID_ARGUMENTS + ":pair"))
        if "," in pair:   # Ticker takes several; the simulator answers the first
            pair = pair.split(",")[0]
        market = self.markets.get(pair.upper())
        if market is None:
            return json_response(error_document(UNKNOWN_PAIR))   # Kraken: HTTP 200
        try:
            return json_response(build(market, self.clock()))
        except BadArguments as error:
            return json_response(error_document(f"{INVALID_ARGUMENTS}:{error}"))

    def _rate_limited(self) -> SimResponse | None:
        if self.rate_limit is None:
            return None
        calls, seconds = self.rate_limit
        now = time.monotonic()
        with self._calls_lock:
            while self._calls and self._calls[0] <= now - seconds:
                self._calls.popleft()
            if len(self._calls) >= calls:
                return json_response(error_document(TOO_MANY_REQUESTS), self.rate_limit_status)
            self._calls.append(now)
        return None

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            return json.dumps(error_document(params.get("reason") or UNKNOWN_PAIR)).encode()
        mutate = FAULTY_DOCUMENTS.get(kind)
        if mutate is None or request.endpoint not in ("depth", "trades", "ticker", "ohlc"):
            return None
        market, now = self._fault_market(request), self.clock()
        faulty = mutate(request.endpoint, self._fault_document(request, market, now), market)
        return None if faulty is None else json.dumps(faulty).encode()

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        market, now = self._fault_market(request), self.clock()
        key = market.pair.key.encode()
        if request.endpoint == "depth":   # the normal bids, then asks without end
            book = market.book(now, DEPTH_MAX)
            bids = json.dumps(_value(depth_document(market, now, DEPTH_DEFAULT))["bids"])
            head = b'{"error": [], "result": {"' + key + b'": {"bids": ' + bids.encode() + \
                b', "asks": ['
            return HugeDocument(head, _endless_asks(market, book), b"]}}}")
        if request.endpoint == "trades":
            head = b'{"error": [], "result": {"' + key + b'": ['
            return HugeDocument(head, _endless_trades(market, now), b'], "last": "0"}}')
        return None

    def _fault_market(self, request: SimRequest) -> KrakenMarket:
        # Faults are wanted even for a pair Kraken does not list: render them for XBTUSD then.
        return (self.markets.get(request.query.get("pair", "").split(",")[0].upper())
                or self.markets[PAIRS[0].altname])

    def _fault_document(self, request: SimRequest, market: KrakenMarket, now: float) -> Any:
        """The endpoint's normal document, built leniently (bad query -> defaults) and big
        enough for every fault to have something to break."""
        endpoint = request.endpoint
        if endpoint == "depth":
            return depth_document(market, now, DEPTH_DEFAULT)
        if endpoint == "trades":
            return trades_document(market, now, 50)
        if endpoint == "ticker":
            return ticker_document(market, now)
        try:
            interval = int(request.query.get("interval", "1"))
        except ValueError:
            interval = 1
        return ohlc_document(market, now, interval if interval in OHLC_INTERVALS else 1)


def _endless_asks(market: KrakenMarket, book: Book) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending from the best ask, 100 per item."""
    amounts = [market.depth_volume(amount) for _, amount in book.asks[:7]]
    second = book.second
    for first in itertools.count(book.asks[0][0], 100):
        yield ", ".join(f'["{market.rest_price(p)}", "{amounts[p % 7]}", {second}]'
                        for p in range(first, first + 100)).encode()


def _endless_trades(market: KrakenMarket, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades, priced like the last hour's, `batch` per item."""
    recent = market.trades(now, 3600) or [Trade(1, now, round(market.mid_ticks(now)), 1, 0)]
    models = [(market.rest_price(t.price), market.amount_str(t.amount), "bs"[t.side])
              for t in recent]
    newest = recent[0]
    for first in itertools.count(0, batch):
        rows = []
        for n in range(first, first + batch):
            price, volume, side = models[n % len(models)]
            rows.append(f'["{price}", "{volume}", {newest.at - n / 4:.4f}, "{side}", "l", "", '
                        f'{newest.tid - n}]')
        yield ", ".join(rows).encode()


SIM_REST = KrakenExchange   # found by proj.sim.default_exchanges()
