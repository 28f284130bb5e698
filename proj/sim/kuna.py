"""Kuna's public REST API v4 (https://api.kuna.io), as served by the simulator.

Shapes come from Kuna's documentation (docs.kuna.io: "Get public orders book", "Get public
trades book", "Get market info by tickers" and their API-reference pages); nothing is shared
with the collector's parsers. Every answer is wrapped in {"data": ...}; numbers are decimal
strings with no trailing zeros ("16950", "0.001").

    GET /v4/order/public/book/{pair}?level=5|10|20|50|100|500|1000   (default 1000)
        {"data": {"asks": [[price, qty], ...lowest first], "bids": [...highest first]}}
    GET /v4/trade/public/book/{pair}?limit=1..100                      (default 25)
        {"data": [{"id": uuid, "pair", "quoteQuantity", "matchPrice", "matchQuantity",
                   "createdAt": "2022-09-23T14:30:41.486Z", "side": "Bid"|"Ask"}, ...newest first]}
    GET /v4/markets/public/tickers?pairs=BTC_USDT,ETH_BTC
        {"data": [{"pair", "percentagePriceChange", "price", "equivalentPrice": "", "high",
                   "low", "baseVolume", "quoteVolume", "bestBidPrice", "bestAskPrice",
                   "priceChange"}, ...]}   (a pair without trades in 24 h: "0" everywhere)

Errors use the v4 envelope {"errors": [{"message", "code", "extensions": {"code"}}]} with the
documented codes and messages (ARGUMENT_VALIDATION_ERROR "take must not be greater than 100",
WrongRequestException "level must be one of the following values: ...", NotFoundException
"Cannot GET ..."). Kuna documents no answer for an unknown pair: here it is the same envelope,
code NOT_FOUND. Faults render in these shapes too; for Kuna's 429, set an exchange_error fault
with status=429 (its body is the envelope, code TOO_MANY_REQUESTS), or build the exchange with
`rate_limit=(n, seconds)` to have it answer 429 itself past its budget. Kuna documents neither
its limits nor its 429 body: the body here is the v4 envelope with the message of the web
framework Kuna's answers show (NestJS: "ThrottlerException: Too Many Requests").

Prices, books and trades come from the same seeded per-pair random walk as the Bitstamp
simulator (bitstamp.Market), so concurrent answers agree with each other.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

from .bitstamp import Book, Market, PairSpec, Trade
from .server import HugeDocument, RecentRequests, Route, SimRequest, SimResponse, json_response

# Kuna's pairs (precisions as /v4/markets/public/getAll gives them: BTC_USDT has 6 decimals of
# BTC and 2 of USDT); price levels and activity are only plausible. DAY_NIGHT is Kuna's pair for
# testing: it does not trade here, so its ticker is the documented all-"0" one.
PAIRS: tuple[PairSpec, ...] = (
    PairSpec("BTC_USDT", "BTC/USDT", "Bitcoin / Tether", 6, 2, "5 USDT", 65000, 0.03, 6, 0.02),
    PairSpec("ETH_USDT", "ETH/USDT", "Ether / Tether", 4, 2, "5 USDT", 3300, 0.04, 4, 0.4),
    PairSpec("BTC_UAH", "BTC/UAH", "Bitcoin / Hryvnia", 6, 0, "200 UAH", 2700000, 0.03, 3, 0.01),
    PairSpec("USDT_UAH", "USDT/UAH", "Tether / Hryvnia", 2, 2, "200 UAH", 41.5, 0.002, 5, 500),
    PairSpec("ETH_BTC", "ETH/BTC", "Ether / Bitcoin", 4, 6, "0.0001 BTC", 0.05, 0.025, 1, 0.5),
    PairSpec("SOL_USDT", "SOL/USDT", "Solana / Tether", 3, 2, "5 USDT", 150, 0.05, 2, 3),
    PairSpec("TRX_UAH", "TRX/UAH", "Tron / Hryvnia", 1, 4, "200 UAH", 5.2, 0.04, 2, 2000),
    PairSpec("DAY_NIGHT", "DAY/NIGHT", "Kuna test pair", 2, 2, "1 NIGHT", 1.0, 0.01, 0, 10),
)

BOOK_LEVELS = (5, 10, 20, 50, 100, 500, 1000)
DEFAULT_LEVEL = 1000
MAX_TRADES, DEFAULT_TRADES = 100, 25


def kuna_number(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals as Kuna writes it: no trailing zeros ("16950", "0.001")."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10 ** decimals)
    text = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def iso_ms(at: float) -> str:
    """Unix seconds to Kuna's createdAt: ISO 8601 UTC with milliseconds and a Z."""
    ms = math.floor(at * 1000)
    moment = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def trade_uuid(pair: str, tid: int) -> str:
    """Kuna's trade ids are UUIDs: one per (pair, trade), the same every time it is asked."""
    digest = hashlib.blake2b(f"kuna:{pair}:{tid}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


# ---------------------------------------------------------------------------------------------
# Documents in Kuna's shapes

def price(market: Market, ticks: int) -> str:
    return kuna_number(ticks, market.spec.counter_decimals)


def qty(market: Market, units: int) -> str:
    return kuna_number(units, market.spec.base_decimals)


def book_data(market: Market, now: float, level: int = DEFAULT_LEVEL) -> dict[str, Any]:
    book = market.book(now, depth=level)
    return {"asks": [[price(market, p), qty(market, a)] for p, a in book.asks],
            "bids": [[price(market, p), qty(market, a)] for p, a in book.bids]}


def trade_item(market: Market, trade: Trade) -> dict[str, str]:
    decimals = market.spec.counter_decimals + market.spec.base_decimals
    return {
        "id": trade_uuid(market.spec.url_symbol, trade.tid),
        "pair": market.spec.url_symbol,
        "quoteQuantity": kuna_number(trade.price * trade.amount, decimals),
        "matchPrice": price(market, trade.price),
        "matchQuantity": qty(market, trade.amount),
        "createdAt": iso_ms(trade.at),
        "side": "Bid" if trade.side == 0 else "Ask",   # the taker buys (Bid) or sells (Ask)
    }


def recent_trades(market: Market, now: float, limit: int, max_days: int = 7) -> list[Trade]:
    """The last `limit` trades, newest first, however long ago (Kuna keeps no time window),
    looking back at most `max_days`."""
    if market.spec.trades_per_minute <= 0:
        return []
    found: list[Trade] = []
    newest = math.floor(now / 60)
    for minute in range(newest, newest - max_days * 1440, -1):
        found.extend(t for t in reversed(market.trades_in_minute(minute)) if t.at <= now)
        if len(found) >= limit:
            break
    return found[:limit]


def trades_data(market: Market, now: float, limit: int = DEFAULT_TRADES) -> list[dict[str, str]]:
    return [trade_item(market, t) for t in recent_trades(market, now, limit)]


def ticker_item(market: Market, now: float) -> dict[str, str]:
    day = market.candles(900, 96, now)   # the last 24 hours in quarter hours
    volume = sum(c.volume for c in day)
    last = market.last_trade(now)
    if volume == 0 or last is None:      # "The following pair was not traded yesterday"
        return {"pair": market.spec.url_symbol, "percentagePriceChange": "0", "price": "0",
                "equivalentPrice": "", "high": "0", "low": "0", "baseVolume": "0",
                "quoteVolume": "0", "bestBidPrice": "0", "bestAskPrice": "0", "priceChange": "0"}
    book = market.book(now)
    open_24 = round(market.mid_ticks(now - 86400))
    change = last.price - open_24
    quote_units = sum(round((c.high + c.low + c.close) / 3) * c.volume for c in day)
    return {
        "pair": market.spec.url_symbol,
        "percentagePriceChange": repr(change / open_24 * 100),   # Kuna's are floats as text too
        "price": price(market, last.price),
        "equivalentPrice": "",
        "high": price(market, max(max(c.high for c in day), last.price)),
        "low": price(market, min(min(c.low for c in day), last.price)),
        "baseVolume": qty(market, volume),
        "quoteVolume": kuna_number(quote_units,
                                   market.spec.counter_decimals + market.spec.base_decimals),
        "bestBidPrice": price(market, book.bids[0][0]),
        "bestAskPrice": price(market, book.asks[0][0]),
        "priceChange": price(market, change),
    }


def error_document(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "code": code, "extensions": {"code": code}}]}


def error_response(message: str, code: str, status: int = 400) -> SimResponse:
    return json_response(error_document(message, code), status)


# ---------------------------------------------------------------------------------------------
# Faulty variants of each endpoint's document (see KunaExchange.fault_body)

def _nan_json(endpoint: str, doc: Any, market: Market) -> Any:
    nan = float("nan")   # json.dumps writes it as the bare token NaN
    if endpoint == "order_book":
        doc["data"]["bids"][0][0] = nan
    elif endpoint == "trades":
        doc["data"][0]["matchPrice"] = nan
    else:
        doc["data"][0]["price"] = nan
    return doc


def _wrong_shape(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # levels as objects instead of [price, quantity]
        for side in ("asks", "bids"):
            doc["data"][side] = [{"price": p, "quantity": q} for p, q in doc["data"][side]]
        return doc
    if endpoint == "tickers":        # one object where the list belongs
        doc["data"] = doc["data"][0]
        return doc
    return {"data": {"foo": 1}}      # an object where the trades list belongs


def _crossed(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # every bid moved up to 1 tick above the best ask
        bids, asks = doc["data"]["bids"], doc["data"]["asks"]
        best_bid, best_ask = market.price_ticks(bids[0][0]), market.price_ticks(asks[0][0])
        shift = best_ask - best_bid + 1
        doc["data"]["bids"] = [[price(market, market.price_ticks(p) + shift), q] for p, q in bids]
        return doc
    if endpoint == "tickers":
        row = doc["data"][0]
        row["bestBidPrice"], row["bestAskPrice"] = row["bestAskPrice"], row["bestBidPrice"]
        if row["bestBidPrice"] == row["bestAskPrice"]:
            row["bestBidPrice"] = price(market, market.price_ticks(row["bestAskPrice"]) + 1)
        return doc
    return None


def _unsorted(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":     # the first ten bids ascending
        bids = doc["data"]["bids"]
        bids[:10] = reversed(bids[:10])
        return doc
    return None


def _bad_values(endpoint: str, doc: Any, market: Market) -> Any:
    if endpoint == "order_book":
        doc["data"]["bids"][0][1] = "-" + doc["data"]["bids"][0][1]
        doc["data"]["asks"][0][0] = "0"
    elif endpoint == "trades":
        doc["data"][0].update(createdAt="yesterday", matchPrice="0",
                              matchQuantity="-" + doc["data"][0]["matchQuantity"])
    else:
        doc["data"][0].update(high="-1", baseVolume="-" + doc["data"][0]["baseVolume"])
    return doc


FAULTY_DOCUMENTS: dict[str, Callable[[str, Any, Market], Any]] = {
    "nan_json": _nan_json, "wrong_shape": _wrong_shape, "crossed": _crossed,
    "unsorted": _unsorted, "bad_values": _bad_values,
}


class BadParameter(ValueError):
    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def parse_level(query: dict[str, str]) -> int:
    if "level" not in query:
        return DEFAULT_LEVEL
    try:
        level = int(query["level"])
    except ValueError:
        level = -1
    if level not in BOOK_LEVELS:   # documented as a 500
        raise BadParameter("level must be one of the following values: "
                           + ", ".join(map(str, BOOK_LEVELS)), "WrongRequestException", 500)
    return level


def parse_limit(query: dict[str, str]) -> int:
    if "limit" not in query:
        return DEFAULT_TRADES
    try:
        limit = int(query["limit"])
    except ValueError:
        raise BadParameter("limit must be a number conforming to the specified constraints",
                           "WrongRequestException") from None
    if limit < 1:
        raise BadParameter("limit must be a positive number", "WrongRequestException")
    if limit > MAX_TRADES:
        raise BadParameter(f"take must not be greater than {MAX_TRADES}",
                           "ARGUMENT_VALIDATION_ERROR")
    return limit


# ---------------------------------------------------------------------------------------------
# The exchange as the server sees it

class KunaExchange:
    """Kuna's public REST API v4. `clock` is injectable so tests can move time;
    `rate_limit=(n, seconds)` makes it answer 429 past n requests in any such window."""

    name = "kuna"

    def __init__(self, clock: Callable[[], float] = time.time,
                 pairs: Sequence[PairSpec] = PAIRS,
                 rate_limit: tuple[int, float] | None = None) -> None:
        self.clock = clock
        self.markets = {spec.url_symbol: Market(spec, i) for i, spec in enumerate(pairs)}
        self.rate_limit = rate_limit
        self._recent = RecentRequests()

    def routes(self) -> list[Route]:
        pair = r"(?P<pair>[^/]+)"
        limited = self._limited
        return [
            Route(rf"/v4/order/public/book/{pair}", limited(self.order_book), "order_book"),
            Route(rf"/v4/trade/public/book/{pair}", limited(self.trades), "trades"),
            Route(r"/v4/markets/public/tickers", limited(self.tickers), "tickers"),
            Route(r"/v4/markets/public/getAll", limited(self.markets_all), "markets"),
            Route(r"/v4/public/timestamp", limited(self.timestamp), "timestamp"),
            # the rest of /v4: the framework's 404, in the v4 envelope
            Route(r"/v4(?:/.*)?", self.not_found, "not_found",
                  ("GET", "POST", "PUT", "PATCH", "DELETE")),
        ]

    # -- the exchange's own request budget ---------------------------------------------------

    def _limited(self, handler: Callable[[SimRequest], SimResponse]
                 ) -> Callable[[SimRequest], SimResponse]:
        def limited(request: SimRequest) -> SimResponse:
            return self.too_many_requests() if self._over_limit() else handler(request)
        return limited

    def _over_limit(self) -> bool:
        return self._recent.over(self.rate_limit)

    @staticmethod
    def too_many_requests() -> SimResponse:
        # Not documented by Kuna: the v4 envelope with NestJS's throttler message.
        return error_response("ThrottlerException: Too Many Requests", "TOO_MANY_REQUESTS", 429)

    # -- endpoints ------------------------------------------------------------------------------

    def order_book(self, request: SimRequest) -> SimResponse:
        market = self._market(request)
        if market is None:
            return self._unknown_pair(request)
        try:
            level = parse_level(request.query)
        except BadParameter as error:
            return error_response(str(error), error.code, error.status)
        return json_response({"data": book_data(market, self.clock(), level)})

    def trades(self, request: SimRequest) -> SimResponse:
        market = self._market(request)
        if market is None:
            return self._unknown_pair(request)
        try:
            limit = parse_limit(request.query)
        except BadParameter as error:
            return error_response(str(error), error.code, error.status)
        return json_response({"data": trades_data(market, self.clock(), limit)})

    def tickers(self, request: SimRequest) -> SimResponse:
        pairs = [p for p in request.query.get("pairs", "").split(",") if p]
        if not pairs:   # documented: 500, "Empty data object"
            return json_response({"data": {}}, 500)
        now = self.clock()
        # pairs Kuna does not list are left out of the answer
        return json_response({"data": [ticker_item(self.markets[p], now)
                                       for p in pairs if p in self.markets]})

    def markets_all(self, request: SimRequest) -> SimResponse:
        return json_response({"data": [
            {"pair": m.spec.url_symbol,
             "baseAsset": {"code": m.spec.url_symbol.split("_")[0],
                           "precision": m.spec.base_decimals},
             "quoteAsset": {"code": m.spec.url_symbol.split("_")[1],
                            "precision": m.spec.counter_decimals},
             "tickerPriceChange": "0"}
            for m in self.markets.values()]})

    def timestamp(self, request: SimRequest) -> SimResponse:
        now = self.clock()
        return json_response({"data": {"timestamp": math.floor(now),
                                       "timestamp_miliseconds": math.floor(now * 1000)}})

    def not_found(self, request: SimRequest) -> SimResponse:
        return error_response(f"Cannot {request.method} {request.path}", "NotFoundException", 404)

    def _market(self, request: SimRequest) -> Market | None:
        return self.markets.get(request.path_params["pair"])

    def _unknown_pair(self, request: SimRequest) -> SimResponse:
        return error_response(f"Pair {request.path_params['pair']} not found", "NOT_FOUND")

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            status = int(params.get("status") or 200)
            code = params.get("response_code") or (
                "TOO_MANY_REQUESTS" if status == 429 else "ARGUMENT_VALIDATION_ERROR")
            reason = params.get("reason") or (
                "ThrottlerException: Too Many Requests" if status == 429
                else "take must not be greater than 100")
            return json.dumps(error_document(reason, str(code))).encode()
        mutate = FAULTY_DOCUMENTS.get(kind)
        endpoint = request.endpoint
        if mutate is None or endpoint not in ("order_book", "trades", "tickers"):
            return None
        market, now = self._fault_market(request), self.clock()
        faulty = mutate(endpoint, self._fault_document(endpoint, market, now), market)
        return None if faulty is None else json.dumps(faulty).encode()

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        market, now = self._fault_market(request), self.clock()
        if request.endpoint == "order_book":   # the normal bids, then asks without end
            book = market.book(now, depth=100)
            bids = json.dumps([[price(market, p), qty(market, a)] for p, a in book.bids])
            head = '{"data": {"bids": ' + bids + ', "asks": ['
            return HugeDocument(head.encode(), _endless_asks(market, book), b"]}}")
        if request.endpoint == "trades":
            return HugeDocument(b'{"data": [', _endless_trades(market, now), b"]}")
        return None

    def _fault_market(self, request: SimRequest) -> Market:
        # Faults are wanted even on pairs Kuna does not list: render them for BTC_USDT then.
        pair = request.path_params.get("pair") or request.query.get("pairs", "").split(",")[0]
        return self.markets.get(pair) or next(iter(self.markets.values()))

    def _fault_document(self, endpoint: str, market: Market, now: float) -> Any:
        """The endpoint's normal document, big enough for every fault to have something to break."""
        if endpoint == "order_book":
            return {"data": book_data(market, now, 100)}
        if endpoint == "trades":
            return {"data": trades_data(market, now, MAX_TRADES)}
        if market.spec.trades_per_minute == 0:   # a ticker with figures to break
            market = next(iter(self.markets.values()))
        return {"data": [ticker_item(market, now)]}


def _endless_asks(market: Market, book: Book, batch: int = 512) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending from the best ask, `batch` per item."""
    amounts = [qty(market, amount) for _, amount in book.asks[:7]]
    decimals = market.spec.counter_decimals
    start = book.asks[0][0]
    for first in itertools.count(start, batch):
        yield ", ".join(f'["{kuna_number(p, decimals)}", "{amounts[p % 7]}"]'
                        for p in range(first, first + batch)).encode()


def _endless_trades(market: Market, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades (four a second), priced like the recent ones, `batch` per item
    (formatted by hand: json.dumps, uuid and datetime per trade are what make it slow)."""
    recent = recent_trades(market, now, MAX_TRADES)
    if not recent:
        recent = [Trade(0, now, round(market.mid_ticks(now)), 1, 0)]
    models = [(item["quoteQuantity"], item["matchPrice"], item["matchQuantity"], item["side"])
              for item in (trade_item(market, t) for t in recent)]
    pair, newest = market.spec.url_symbol, math.floor(recent[0].at)
    for first in itertools.count(0, batch):
        items = []
        for n in range(first, first + batch):
            quote, match_price, match_qty, side = models[n % len(models)]
            second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(newest - n // 4))
            items.append(f'{{"id": "00000000-0000-4000-8000-{n:012x}", "pair": "{pair}", '
                         f'"quoteQuantity": "{quote}", "matchPrice": "{match_price}", '
                         f'"matchQuantity": "{match_qty}", '
                         f'"createdAt": "{second}.{750 - 250 * (n % 4):03d}Z", "side": "{side}"}}')
        yield ", ".join(items).encode()


SIM_REST = KunaExchange   # found by proj.sim.default_exchanges()
