"""OKX REST API v5 public market data, as served by the simulator.

Shapes come from OKX's documentation (https://www.okx.com/docs-v5/en/#order-book-trading-market-data)
and recorded bodies (fixtures/okx/rest_*.json); nothing is shared with the collector's parsers.

    GET /api/v5/market/books?instId=BTC-USDT&sz=5          levels [px, sz, "0", numOrders]
    GET /api/v5/market/trades?instId=BTC-USDT&limit=100    newest first
    GET /api/v5/market/ticker?instId=BTC-USDT              24 h rolling window
    GET /api/v5/market/candles?instId=BTC-USDT&bar=1H&limit=100   newest first, 9-string rows

Every answer is the envelope {"code": "0", "msg": "", "data": [...]}, compact JSON, all values
strings. Errors keep the envelope with another code: 51001 "Instrument ID doesn't exist." in
HTTP 200, 50014 (a missing parameter) and 51000 (a bad one) in HTTP 400, and an unknown
/api/v5 path gets OKX's 404 body, whose "code" is a number. With `enforce_rate_limits=True`
the documented per-endpoint budgets (books 40, candles 40, ticker 20, trades 100 requests per
2 s) are enforced, and requests past them get HTTP 429 {"msg": "Too Many Requests",
"code": "50011"}; tests get the same answer on demand with the exchange_error fault:
sim.set_fault(path, "exchange_error", status=429, response_code="50011").

Prices follow the same kind of deterministic per-pair random walk as the Bitstamp side
(bitstamp.Market, seeded by the OKX instrument name), so books, trades, tickers and candles of
one instant agree with each other and history is stable between requests. Month bars
(1M, 3M, ...) are not simulated (51000).
"""
from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from .bitstamp import MAX_PAIRS, Book, Market, PairSpec, Trade
from .server import HugeDocument, Route, SimRequest, SimResponse

# Instruments with OKX's tick sizes (price decimals) and lot decimals; price levels,
# volatility and activity are only plausible.
PAIRS: tuple[PairSpec, ...] = (
    PairSpec("BTC-USDT", "BTC/USDT", "Bitcoin / Tether", 8, 1, "0.00001", 65000, 0.03, 30, 0.02),
    PairSpec("ETH-USDT", "ETH/USDT", "Ether / Tether", 6, 2, "0.0001", 3300, 0.04, 20, 0.3),
    PairSpec("BTC-USDC", "BTC/USDC", "Bitcoin / USD Coin", 8, 1, "0.00001", 65000, 0.03, 6, 0.02),
    PairSpec("ETH-BTC", "ETH/BTC", "Ether / Bitcoin", 6, 5, "0.001", 0.05, 0.025, 3, 0.5),
    PairSpec("SOL-USDT", "SOL/USDT", "Solana / Tether", 6, 2, "0.001", 150, 0.05, 10, 5),
    PairSpec("XRP-USDT", "XRP/USDT", "XRP / Tether", 6, 4, "1", 0.55, 0.05, 8, 800),
    PairSpec("LTC-USDT", "LTC/USDT", "Litecoin / Tether", 6, 2, "0.001", 80, 0.045, 4, 3),
    PairSpec("OKB-USDT", "OKB/USDT", "OKB / Tether", 6, 3, "0.01", 45, 0.04, 3, 20),
    PairSpec("DOGE-USDT", "DOGE/USDT", "Dogecoin / Tether", 6, 5, "10", 0.12, 0.06, 8, 5000),
)

BOOK_MAX = 400                  # sz: 1..400, default 1
TRADES_MAX, TRADES_DEFAULT = 500, 100
CANDLES_MAX, CANDLES_DEFAULT = 300, 100
HK = 8 * 3600                   # bars of 6H and longer open at Hong Kong midnight by default
MONDAY = 4 * 86400              # the epoch was a Thursday; weeks open on Monday
# bar -> (seconds, offset of its openings from multiples of seconds)
BARS: dict[str, tuple[int, int]] = {
    "1m": (60, 0), "3m": (180, 0), "5m": (300, 0), "15m": (900, 0), "30m": (1800, 0),
    "1H": (3600, 0), "2H": (7200, 0), "4H": (14400, 0),
    "6H": (21600, -HK), "12H": (43200, -HK), "1D": (86400, -HK), "2D": (172800, -HK),
    "3D": (259200, -HK), "1W": (604800, MONDAY - HK),
    "6Hutc": (21600, 0), "12Hutc": (43200, 0), "1Dutc": (86400, 0), "2Dutc": (172800, 0),
    "3Dutc": (259200, 0), "1Wutc": (604800, MONDAY),
}
# Public market data limits: requests per endpoint per IP in RATE_WINDOW seconds.
RATE_LIMITS = {"books": 40, "trades": 100, "ticker": 20, "candles": 40}
RATE_WINDOW = 2.0

NOT_FOUND_DOCUMENT = {"code": 404, "data": {}, "detailMsg": "", "error_code": "404",
                      "error_message": "Not Found", "msg": "Not Found"}
RATE_LIMITED_DOCUMENT = {"msg": "Too Many Requests", "code": "50011"}
UNKNOWN_INSTRUMENT = ("51001", "Instrument ID doesn't exist.")


def dumps(document: Any) -> str:
    # OKX answers compact JSON
    return json.dumps(document, separators=(",", ":"))


def okx_response(document: Any, status: int = 200) -> SimResponse:
    return SimResponse(status, dumps(document).encode())


def error_response(code: str, message: str, status: int = 200) -> SimResponse:
    return okx_response({"code": code, "data": [], "msg": message}, status)


def okx_decimal(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals as OKX writes it: no trailing zeros ("30236", "0.0002")."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10 ** decimals)
    text = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def num_orders(price: int, salt: int = 0) -> str:
    """How many orders make up a level: a small number, stable for a price."""
    return str(1 + (price * 2654435761 + salt * 40503) % 97 % 9)


class OkxMarket(Market):
    """bitstamp.Market with OKX's way of writing numbers."""

    def px(self, ticks: int) -> str:
        return okx_decimal(ticks, self.spec.counter_decimals)

    def sz(self, units: int) -> str:
        return okx_decimal(units, self.spec.base_decimals)

    def quote(self, units: int, ticks: int) -> str:
        """units of base at ticks of price, in the quote currency (exact)."""
        return okx_decimal(units * ticks, self.spec.base_decimals + self.spec.counter_decimals)

    def ticks(self, text: str) -> int:
        return int(Decimal(text).scaleb(self.spec.counter_decimals))

    @property
    def inst_id(self) -> str:
        return self.spec.url_symbol


# -------------------------------------------------------------------------------------------
# Documents in OKX's shapes (each the whole body: the envelope around the data)

def envelope(data: Any) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


def level(market: OkxMarket, price: int, amount: int) -> list[str]:
    return [market.px(price), market.sz(amount), "0", num_orders(price)]


def books_data(market: OkxMarket, now: float, sz: int, book: Book | None = None) -> dict[str, Any]:
    book = market.book(now, sz) if book is None else book
    return {"asks": [level(market, p, a) for p, a in book.asks[:sz]],
            "bids": [level(market, p, a) for p, a in book.bids[:sz]],
            "ts": str(math.floor(now * 1000))}


def trade_data(market: OkxMarket, trade: Trade) -> dict[str, str]:
    return {"instId": market.inst_id, "side": "buy" if trade.side == 0 else "sell",
            "sz": market.sz(trade.amount), "px": market.px(trade.price),
            "tradeId": str(trade.tid), "ts": str(math.floor(trade.at * 1000))}


def recent_trades(market: OkxMarket, now: float, limit: int) -> list[Trade]:
    """The newest `limit` trades up to now, newest first."""
    window = 600
    found = market.trades(now, window)
    while len(found) < limit and window < 86400:
        window *= 4
        found = market.trades(now, window)
    return found[:limit]


def ticker_data(market: OkxMarket, now: float) -> dict[str, str]:
    book = market.book(now, 1)
    last = market.last_trade(now)
    last_price = last.price if last else round(market.mid_ticks(now))
    open_24 = round(market.mid_ticks(now - 86400))
    day = market.candles(900, 96, now)   # the last 24 hours in quarter hours
    volume = sum(c.volume for c in day)
    quote = sum(c.volume * (c.open + c.close) // 2 for c in day)
    midnight_utc = math.floor(now / 86400) * 86400
    midnight_hk = math.floor((now + HK) / 86400) * 86400 - HK
    return {
        "instType": "SPOT", "instId": market.inst_id,
        "last": market.px(last_price), "lastSz": market.sz(last.amount if last else 0),
        "askPx": market.px(book.asks[0][0]), "askSz": market.sz(book.asks[0][1]),
        "bidPx": market.px(book.bids[0][0]), "bidSz": market.sz(book.bids[0][1]),
        "open24h": market.px(open_24),
        "high24h": market.px(max(max(c.high for c in day), last_price, open_24)),
        "low24h": market.px(min(min(c.low for c in day), last_price, open_24)),
        "volCcy24h": okx_decimal(quote, market.spec.base_decimals + market.spec.counter_decimals),
        "vol24h": market.sz(volume),
        "ts": str(math.floor(now * 1000)),
        "sodUtc0": market.px(round(market.mid_ticks(midnight_utc))),
        "sodUtc8": market.px(round(market.mid_ticks(midnight_hk))),
    }


def candle_starts(bar: str, limit: int, now: float, after: int | None = None,
                  before: int | None = None) -> list[int]:
    """Opening times (s) of the candles to answer, newest first. `after` (ms): only candles
    opening before it; `before` (ms): only candles opening after it (as OKX documents)."""
    step, offset = BARS[bar]
    last = math.floor((now - offset) / step) * step + offset
    if after is not None:
        last = min(last, math.ceil((after / 1000 - offset) / step - 1) * step + offset)
    starts = [last - i * step for i in range(limit)]
    if before is not None:
        starts = [s for s in starts if s * 1000 > before]
    return starts


def candle_row(market: OkxMarket, step: int, start: int, now: float) -> list[str]:
    c = market.candle(step, start, now)
    quote = market.quote(c.volume, (c.open + c.close) // 2)
    return [str(start * 1000), market.px(c.open), market.px(c.high), market.px(c.low),
            market.px(c.close), market.sz(c.volume), quote, quote,
            "1" if start + step <= now else "0"]


class BadParameter(ValueError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _integer(query: dict[str, str], name: str, default: int, low: int, high: int,
             clamp: bool = False) -> int:
    if name not in query or query[name] == "":
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise BadParameter("51000", f"Parameter {name} error") from None
    if clamp:
        value = min(value, high)
    if not low <= value <= high:
        raise BadParameter("51000", f"Parameter {name} error")
    return value


# -------------------------------------------------------------------------------------------
# Faulty variants of each endpoint's document (see OkxExchange.fault_body)

def _nan_json(endpoint: str, doc: Any, market: OkxMarket) -> Any:
    nan = float("nan")   # json.dumps writes the bare token NaN
    data = doc["data"]
    if endpoint == "books":
        data[0]["bids"][0][0] = nan
    elif endpoint == "trades":
        data[0]["px"] = nan
    elif endpoint == "ticker":
        data[0]["last"] = nan
    elif endpoint == "candles":
        data[0][4] = nan
    return doc


def _wrong_shape(endpoint: str, doc: Any, market: OkxMarket) -> Any:
    data = doc["data"]
    if endpoint == "books":      # levels as objects instead of arrays
        for side in ("asks", "bids"):
            data[0][side] = [{"px": l[0], "sz": l[1]} for l in data[0][side]]
        return doc
    if endpoint == "ticker":     # the ticker object itself where the list belongs
        doc["data"] = data[0]
        return doc
    if endpoint == "candles":    # rows as objects, as another exchange would send them
        doc["data"] = [dict(zip(("ts", "o", "h", "l", "c", "vol"), row)) for row in data]
        return doc
    doc["data"] = {"foo": 1}     # an object where the list of trades belongs
    return doc


def _crossed(endpoint: str, doc: Any, market: OkxMarket) -> Any:
    data = doc["data"]
    if endpoint == "books":      # every bid moved up to 1 tick above the best ask
        book = data[0]
        shift = market.ticks(book["asks"][0][0]) - market.ticks(book["bids"][0][0]) + 1
        book["bids"] = [[market.px(market.ticks(l[0]) + shift), *l[1:]] for l in book["bids"]]
        return doc
    if endpoint == "ticker":
        data[0]["bidPx"], data[0]["askPx"] = data[0]["askPx"], data[0]["bidPx"]
        return doc
    return None


def _unsorted(endpoint: str, doc: Any, market: OkxMarket) -> Any:
    data = doc["data"]
    if endpoint == "books":      # the first ten bids ascending
        data[0]["bids"][:10] = reversed(data[0]["bids"][:10])
        return doc
    if endpoint in ("trades", "candles"):   # oldest first instead of newest first
        data.reverse()
        return doc
    return None


def _bad_values(endpoint: str, doc: Any, market: OkxMarket) -> Any:
    data = doc["data"]
    if endpoint == "books":
        book = data[0]
        book["ts"] = "0"
        book["bids"][0][1] = "-" + book["bids"][0][1]
        book["asks"][0][0] = "0"
    elif endpoint == "trades":
        data[0].update(ts="0", px="0", sz="-" + data[0]["sz"])
    elif endpoint == "ticker":
        data[0].update(ts="0", last="0", vol24h="-" + data[0]["vol24h"])
    elif endpoint == "candles":
        data[-1][0] = "0"
        row = data[0]
        row[2], row[3] = row[3], market.px(market.ticks(row[2]) + 1)   # high below low
        row[5] = "-" + row[5]
    return doc


FAULTY_DOCUMENTS: dict[str, Callable[[str, Any, OkxMarket], Any]] = {
    "nan_json": _nan_json, "wrong_shape": _wrong_shape, "crossed": _crossed,
    "unsorted": _unsorted, "bad_values": _bad_values,
}


# -------------------------------------------------------------------------------------------
# The exchange as the server sees it

class OkxExchange:
    """OKX's public REST v5 market data. `clock` is injectable so tests can move time;
    `enforce_rate_limits` answers 429/50011 past the documented budgets (off by default, so
    that tests hammering the simulator are not throttled unless they ask for it)."""

    name = "okx"

    def __init__(self, clock: Callable[[], float] = time.time,
                 pairs: Sequence[PairSpec] = PAIRS, enforce_rate_limits: bool = False) -> None:
        if len(pairs) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} pairs (trade ids are numbered per pair)")
        self.clock = clock
        self.markets = {spec.url_symbol: OkxMarket(spec, i) for i, spec in enumerate(pairs)}
        self.enforce_rate_limits = enforce_rate_limits
        self._windows: dict[str, deque[float]] = {name: deque() for name in RATE_LIMITS}
        self._rate_lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [
            Route(r"/api/v5/market/books", self.books, "books"),
            Route(r"/api/v5/market/trades", self.trades, "trades"),
            Route(r"/api/v5/market/ticker", self.ticker, "ticker"),
            Route(r"/api/v5/market/candles", self.candles, "candles"),
            Route(r"/api/v5(/.*)?", self.not_found, "not_found"),
        ]

    # -- endpoints ------------------------------------------------------------------------------

    def books(self, request: SimRequest) -> SimResponse:
        return self._answer(request, lambda market, now: [books_data(
            market, now, _integer(request.query, "sz", 1, 1, BOOK_MAX))])

    def trades(self, request: SimRequest) -> SimResponse:
        return self._answer(request, lambda market, now: [trade_data(market, t) for t in recent_trades(
            market, now, _integer(request.query, "limit", TRADES_DEFAULT, 1, TRADES_MAX, clamp=True))])

    def ticker(self, request: SimRequest) -> SimResponse:
        return self._answer(request, lambda market, now: [ticker_data(market, now)])

    def candles(self, request: SimRequest) -> SimResponse:
        def data(market: OkxMarket, now: float) -> list[list[str]]:
            bar = request.query.get("bar") or "1m"
            if bar not in BARS:
                raise BadParameter("51000", "Parameter bar error")
            limit = _integer(request.query, "limit", CANDLES_DEFAULT, 1, CANDLES_MAX, clamp=True)
            after = _integer(request.query, "after", None, 0, 1 << 62)
            before = _integer(request.query, "before", None, 0, 1 << 62)
            step = BARS[bar][0]
            return [candle_row(market, step, start, now)
                    for start in candle_starts(bar, limit, now, after, before)]
        return self._answer(request, data)

    def not_found(self, request: SimRequest) -> SimResponse:
        return okx_response(NOT_FOUND_DOCUMENT, 404)

    def _answer(self, request: SimRequest, build: Callable[[OkxMarket, float], Any]) -> SimResponse:
        limited = self._over_rate_limit(request.endpoint)
        if limited is not None:
            return limited
        inst = request.query.get("instId", "")
        if not inst:
            return error_response("50014", "Parameter instId can not be empty.", 400)
        market = self.markets.get(inst)
        if market is None:
            return error_response(*UNKNOWN_INSTRUMENT)
        try:
            return okx_response(envelope(build(market, self.clock())))
        except BadParameter as error:
            return error_response(error.code, error.message, error.status)

    def _over_rate_limit(self, endpoint: str | None) -> SimResponse | None:
        if not self.enforce_rate_limits or endpoint not in RATE_LIMITS:
            return None
        now = time.monotonic()
        with self._rate_lock:
            window = self._windows[endpoint]
            while window and window[0] <= now - RATE_WINDOW:
                window.popleft()
            if len(window) >= RATE_LIMITS[endpoint]:
                return okx_response(RATE_LIMITED_DOCUMENT, 429)
            window.append(now)
        return None

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            code = str(params.get("response_code") or UNKNOWN_INSTRUMENT[0])
            if code in ("50011", "50061"):   # the rate-limit body: no "data" at all
                return dumps({"msg": params.get("reason") or RATE_LIMITED_DOCUMENT["msg"],
                              "code": code}).encode()
            return dumps({"code": code, "data": [],
                          "msg": params.get("reason") or UNKNOWN_INSTRUMENT[1]}).encode()
        mutate = FAULTY_DOCUMENTS.get(kind)
        if mutate is None or request.endpoint not in RATE_LIMITS:
            return None
        market, now = self._fault_market(request), self.clock()
        faulty = mutate(request.endpoint, self._fault_document(request, market, now), market)
        return None if faulty is None else dumps(faulty).encode()

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        market, now = self._fault_market(request), self.clock()
        if request.endpoint == "books":   # the normal bids, then asks without end
            book = market.book(now, BOOK_MAX)
            head = dumps({"code": "0", "msg": "", "data": [
                {"bids": [level(market, p, a) for p, a in book.bids],
                 "ts": str(math.floor(now * 1000)), "asks": []}]})
            head = head[: head.rindex("[")] + "["   # reopen the empty asks list
            return HugeDocument(head.encode(), _endless_asks(market, book), b"]}]}", b",")
        if request.endpoint == "trades":
            return HugeDocument(b'{"code":"0","msg":"","data":[', _endless_trades(market, now),
                                b"]}", b",")
        return None

    def _fault_market(self, request: SimRequest) -> OkxMarket:
        # Faults are wanted even for an instrument OKX does not list: render BTC-USDT then.
        return (self.markets.get(request.query.get("instId", ""))
                or next(iter(self.markets.values())))

    def _fault_document(self, request: SimRequest, market: OkxMarket, now: float) -> Any:
        """The endpoint's normal document, built leniently (bad query -> defaults) and big
        enough for every fault to have something to break."""
        endpoint = request.endpoint

        def number(name: str, default: int, low: int, high: int) -> int:
            try:
                return _integer(request.query, name, default, low, high, clamp=True)
            except BadParameter:
                return default

        if endpoint == "books":
            return envelope([books_data(market, now, number("sz", 20, 10, BOOK_MAX))])
        if endpoint == "trades":
            return envelope([trade_data(market, t) for t in
                             recent_trades(market, now, number("limit", 20, 2, TRADES_MAX))])
        if endpoint == "ticker":
            return envelope([ticker_data(market, now)])
        bar = request.query.get("bar") if request.query.get("bar") in BARS else "1m"
        return envelope([candle_row(market, BARS[bar][0], start, now) for start in
                         candle_starts(bar, number("limit", 10, 2, CANDLES_MAX), now)])


def _endless_asks(market: OkxMarket, book: Book) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending from the best ask, 100 to an item."""
    amounts = [market.sz(amount) for _, amount in book.asks[:7]]
    for first in itertools.count(book.asks[0][0], 100):
        yield ",".join(f'["{market.px(p)}","{amounts[p % 7]}","0","{num_orders(p)}"]'
                       for p in range(first, first + 100)).encode()


def _endless_trades(market: OkxMarket, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades (ids and times going down), priced like the last hour's."""
    recent = recent_trades(market, now, 50) or [Trade(10 ** 9, now, round(market.mid_ticks(now)), 1, 0)]
    newest_id, newest_ms = recent[0].tid, math.floor(recent[0].at * 1000)
    models = [(market.sz(t.amount), market.px(t.price), "buy" if t.side == 0 else "sell")
              for t in recent]
    for first in itertools.count(0, batch):
        rows = []
        for n in range(first, first + batch):
            sz, px, side = models[n % len(models)]
            rows.append(f'{{"instId":"{market.inst_id}","side":"{side}","sz":"{sz}","px":"{px}",'
                        f'"tradeId":"{newest_id - n}","ts":"{newest_ms - n * 250}"}}')
        yield ",".join(rows).encode()


SIM_REST = OkxExchange   # found by proj.sim.default_exchanges()
