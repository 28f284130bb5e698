"""Coinbase Advanced Trade public REST market data, as served by the simulator.

Shapes come from Coinbase's API reference (api-reference/advanced-trade-api/rest-api/public/*)
and recorded bodies (fixtures/coinbase/rest_at_*.json, large/rest_at_market_products.json);
nothing is shared with the collector's parsers.

    GET /api/v3/brokerage/market/product_book?product_id=BTC-USD[&limit=N]
    GET /api/v3/brokerage/market/products[?product_ids=..&limit=..]
    GET /api/v3/brokerage/market/products/{product_id}
    GET /api/v3/brokerage/market/products/{product_id}/ticker?limit=N[&start=&end=]
    GET /api/v3/brokerage/market/products/{product_id}/candles?start=&end=&granularity=[&limit=]
    GET /api/v3/brokerage/time

Numbers are strings without trailing zeros ("68923", "0.058"), times RFC 3339 with the
fraction's trailing zeros cut. Trades list newest first and name the MAKER's side ("SELL" for a
buyer lifting the ask). Candles list newest first, start in unix seconds as a string. Errors:
{"error": "NOT_FOUND", "error_details": ..., "message": ...}.

The prices are the Bitstamp simulator's per-product random walk (bitstamp.Market: a pure
function of product and time), so concurrent requests agree and history is stable; only the
rendering is Coinbase's. `rate_limit=(n, seconds)` makes the simulator itself answer 429 past
n requests in any `seconds` window, with the HTML page Coinbase's gateway sends
(coinbase-samples/advanced-trade-sdk-go#18); off by default.
"""
from __future__ import annotations

import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from .bitstamp import MAX_PAIRS, Market, PairSpec, Trade
from .server import (HTML, HugeDocument, RecentRequests, Route, SimRequest, SimResponse,
                     json_response)

API = "/api/v3/brokerage/market"
GRANULARITIES = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900,
                 "THIRTY_MINUTE": 1800, "ONE_HOUR": 3600, "TWO_HOUR": 7200, "SIX_HOUR": 21600,
                 "ONE_DAY": 86400}
MAX_CANDLES = 350
MAX_TRADES = 1000
BOOK_DEFAULT_DEPTH = 100
BOOK_MAX_DEPTH = 1000


@dataclass(frozen=True)
class ProductSpec:
    product_id: str
    base_name: str
    quote_name: str
    base_increment: str
    quote_increment: str
    base_max_size: str
    quote_min_size: str
    quote_max_size: str
    base_price: float            # long-run level the walk wanders around
    daily_volatility: float
    trades_per_minute: float
    typical_amount: float        # of one trade or book level, in base currency
    alias_to: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return self.product_id.split("-")[0]

    @property
    def quote(self) -> str:
        return self.product_id.split("-")[1]


def _decimals(increment: str) -> int:
    return max(0, -Decimal(increment).normalize().as_tuple().exponent)


# Increments and sizes as in Coinbase's product list (fixtures/coinbase/large/
# rest_at_market_products.json, 2026-08-09); price levels, volatility and activity only plausible.
PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("BTC-USD", "Bitcoin", "US Dollar", "0.00000001", "0.01", "3400", "1", "150000000",
                65000, 0.03, 30, 0.02, ("BTC-USDC",)),
    ProductSpec("ETH-USD", "Ethereum", "US Dollar", "0.00000001", "0.01", "42000", "1",
                "150000000", 1920, 0.04, 20, 0.5, ("ETH-USDC",)),
    ProductSpec("BTC-EUR", "Bitcoin", "Euro", "0.00000001", "0.01", "400", "1", "10000000",
                56300, 0.03, 4, 0.02),
    ProductSpec("BTC-USDT", "Bitcoin", "Tether", "0.00000001", "0.01", "400", "1", "10000000",
                65100, 0.03, 3, 0.01),
    ProductSpec("ETH-USDT", "Ethereum", "Tether", "0.00000001", "0.01", "6200", "1", "10000000",
                1920, 0.04, 2, 0.2),
    ProductSpec("ETH-BTC", "Ethereum", "Bitcoin", "0.00000001", "0.000001", "6100", "0.00001",
                "200", 0.0295, 0.025, 2, 0.5),
    ProductSpec("SOL-USD", "Solana", "US Dollar", "0.00000001", "0.01", "1274000", "1",
                "25000000", 77, 0.05, 10, 10, ("SOL-USDC",)),
    ProductSpec("USDT-USD", "Tether", "US Dollar", "0.01", "0.00001", "10480600", "1", "10000000",
                0.9993, 0.0005, 3, 2000),
    ProductSpec("XRP-USD", "XRP", "US Dollar", "0.000001", "0.0001", "11996772.8407292192545075",
                "1", "10000000", 1.04, 0.05, 8, 800, ("XRP-USDC",)),
    ProductSpec("LTC-USD", "Litecoin", "US Dollar", "0.00000001", "0.01", "122300", "1",
                "10000000", 46, 0.045, 3, 5, ("LTC-USDC",)),
    ProductSpec("DOGE-USD", "Dogecoin", "US Dollar", "0.1", "0.00001", "141834300", "1",
                "10000000", 0.0704, 0.06, 5, 5000, ("DOGE-USDC",)),
)


def market_for(spec: ProductSpec, index: int) -> Market:
    """The price walk, book, trades and candles of one product (the seed is its product id)."""
    pair = PairSpec(spec.product_id.lower(), spec.product_id.replace("-", "/"),
                    f"{spec.base_name} / {spec.quote_name}", _decimals(spec.base_increment),
                    _decimals(spec.quote_increment), f"{spec.quote_min_size} {spec.quote}",
                    spec.base_price, spec.daily_volatility, spec.trades_per_minute,
                    spec.typical_amount)
    return Market(pair, index)


def number(units: int, decimals: int) -> str:
    """An integer count of 10**-decimals as Coinbase writes it: "68923", "0.058", "0"."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10 ** decimals)
    text = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def rfc3339(at: float, digits: int = 6) -> str:
    """Unix seconds to '2026-04-07T00:28:58.544778Z' (Go's RFC3339Nano: trailing zeros cut)."""
    units = round(at * 10 ** digits)
    second, fraction = divmod(units, 10 ** digits)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    fraction_text = f"{fraction:0{digits}d}".rstrip("0")
    return f"{text}.{fraction_text}Z" if fraction_text else f"{text}Z"


def error_document(error: str, message: str) -> dict[str, str]:
    # fixtures/coinbase/rest_at_error_404_invalid_product.json
    return {"error": error, "error_details": message, "message": message}


def error_response(status: int, error: str, message: str) -> SimResponse:
    return json_response(error_document(error, message), status)


def invalid_product() -> SimResponse:
    return error_response(404, "NOT_FOUND", "valid product_id is required")


RATE_LIMIT_PAGE = ("<html>\n  <head>\n    <title>Coinbase</title>\n    <meta name=\"robots\" "
                   "content=\"noindex\">\n  </head>\n  <body>\n    <h1>Too Many Requests</h1>\n"
                   "  </body>\n</html>\n")


class BadParameter(ValueError):
    pass


def _int_param(query: dict[str, str], name: str, required: bool = False) -> int | None:
    if name not in query or query[name] == "":
        if required:
            raise BadParameter(f"{name} is required")
        return None
    try:
        return int(query[name])
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {query[name]!r}") from None


# -------------------------------------------------------------------------------------------
# One product's documents

class Product:
    def __init__(self, spec: ProductSpec, index: int) -> None:
        self.spec = spec
        self.market = market_for(spec, index)
        self.price_decimals = self.market.spec.counter_decimals
        self.size_decimals = self.market.spec.base_decimals
        self._stats_cache: tuple[int, dict[str, int]] | None = None
        self._stats_lock = threading.Lock()

    def price(self, ticks: int) -> str:
        return number(ticks, self.price_decimals)

    def size(self, units: int) -> str:
        return number(units, self.size_decimals)

    # -- book ---------------------------------------------------------------------------------

    def book_document(self, now: float, depth: int) -> dict[str, Any]:
        book = self.market.book(now, depth)
        best_bid, best_ask = book.bids[0][0], book.asks[0][0]
        # mid and spread with one more decimal than prices, as recorded ("68923.665")
        mid = number(best_bid + best_ask, self.price_decimals + 1)
        spread = best_ask - best_bid
        return {
            "pricebook": {
                "product_id": self.spec.product_id,
                "bids": [{"price": self.price(p), "size": self.size(a)} for p, a in book.bids],
                "asks": [{"price": self.price(p), "size": self.size(a)} for p, a in book.asks],
                "time": rfc3339(now),
            },
            "last": mid, "mid_market": mid,
            "spread_bps": f"{spread / ((best_bid + best_ask) / 2) * 10000:.12g}",
            "spread_absolute": self.price(spread),
        }

    # -- trades -------------------------------------------------------------------------------

    def recent_trades(self, now: float, limit: int, start: int | None = None,
                      end: int | None = None) -> list[Trade]:
        """Up to `limit` trades, newest first, at most a day back (or within start..end)."""
        newest = now if end is None else min(now, end)
        oldest = newest - 86400 if start is None else start
        found: list[Trade] = []
        for minute in range(math.floor(newest / 60), math.floor(oldest / 60) - 1, -1):
            for trade in reversed(self.market.trades_in_minute(minute)):
                if oldest <= trade.at <= newest:
                    found.append(trade)
                    if len(found) >= limit:
                        return found
        return found

    def trade_document(self, trade: Trade) -> dict[str, str]:
        return {"trade_id": str(trade.tid), "product_id": self.spec.product_id,
                "price": self.price(trade.price), "size": self.size(trade.amount),
                "time": rfc3339(trade.at),
                # Market's side is the taker's (0 buy lifts the ask); Coinbase names the maker's
                "side": "SELL" if trade.side == 0 else "BUY",
                "bid": "", "ask": "", "exchange": "coinbase"}

    def market_trades_document(self, now: float, limit: int, start: int | None = None,
                               end: int | None = None) -> dict[str, Any]:
        book = self.market.book(now, 1)
        trades = self.recent_trades(now, limit, start, end)
        return {"trades": [self.trade_document(t) for t in trades],
                "best_bid": self.price(book.bids[0][0]), "best_ask": self.price(book.asks[0][0])}

    # -- 24 h statistics ----------------------------------------------------------------------

    def stats(self, now: float) -> dict[str, int]:
        """24 h figures in ticks/units, recomputed at most once a second."""
        second = math.floor(now)
        with self._stats_lock:
            if self._stats_cache is not None and self._stats_cache[0] == second:
                return self._stats_cache[1]
        market = self.market
        last = market.last_trade(now)
        price = last.price if last else round(market.mid_ticks(now))
        day = market.candles(900, 96, now)
        volume = sum(c.volume for c in day)
        open_24 = round(market.mid_ticks(now - 86400))
        stats = {"price": price, "open": open_24, "volume": volume,
                 "high": max(max(c.high for c in day), price),
                 "low": min(min(c.low for c in day), price),
                 "quote_volume_cents": round(sum((c.high + c.low + c.close) / 3 * c.volume
                                                 for c in day)
                                             / 10 ** (self.price_decimals + self.size_decimals)
                                             * 100)}
        with self._stats_lock:
            self._stats_cache = (second, stats)
        return stats

    def product_document(self, now: float) -> dict[str, Any]:
        s, spec = self.stats(now), self.spec
        change = (s["price"] - s["open"]) / s["open"] * 100 if s["open"] else 0.0
        return {
            "product_id": spec.product_id, "price": self.price(s["price"]),
            "price_percentage_change_24h": f"{change:.14f}",
            "volume_24h": self.size(s["volume"]),
            "volume_percentage_change_24h": f"{(math.sin(now / 86400) * 20):.14f}",
            "base_increment": spec.base_increment, "quote_increment": spec.quote_increment,
            "quote_min_size": spec.quote_min_size, "quote_max_size": spec.quote_max_size,
            "base_min_size": spec.base_increment, "base_max_size": spec.base_max_size,
            "base_name": spec.base_name, "quote_name": spec.quote_name, "watched": False,
            "is_disabled": False, "new": False, "status": "online", "cancel_only": False,
            "limit_only": False, "post_only": False, "trading_disabled": False,
            "auction_mode": False, "product_type": "SPOT", "quote_currency_id": spec.quote,
            "base_currency_id": spec.base, "fcm_trading_session_details": None,
            "mid_market_price": "", "alias": "", "alias_to": list(spec.alias_to),
            "base_display_symbol": spec.base, "quote_display_symbol": spec.quote,
            "view_only": False, "price_increment": spec.quote_increment,
            "display_name": spec.product_id, "product_venue": "CBE",
            "approximate_quote_24h_volume": number(s["quote_volume_cents"], 2),
            "new_at": "2023-01-01T00:00:00Z", "market_cap": "", "base_cbrn": "",
            "quote_cbrn": "", "product_cbrn": "", "icon_color": "", "icon_url": "",
            "display_name_overwrite": "", "is_alpha_testing": False, "about_description": "",
            # empty in every recording, whatever the market does
            "best_bid_price": "", "best_ask_price": "",
            "high_24h": self.price(s["high"]), "low_24h": self.price(s["low"]),
        }

    # -- candles ------------------------------------------------------------------------------

    def candles_document(self, step: int, first: int, last: int, now: float) -> dict[str, Any]:
        market = self.market
        starts = range(last, first - step, -step)   # newest first
        return {"candles": [self._candle(market.candle(step, t, now)) for t in starts]}

    def _candle(self, c) -> dict[str, str]:
        return {"start": str(c.timestamp), "low": self.price(c.low), "high": self.price(c.high),
                "open": self.price(c.open), "close": self.price(c.close),
                "volume": self.size(c.volume)}


@dataclass(frozen=True)
class CandleQuery:
    step: int
    first: int     # start of the oldest candle
    last: int      # start of the newest candle

    @classmethod
    def parse(cls, query: dict[str, str], now: float) -> "CandleQuery":
        granularity = query.get("granularity", "")
        if granularity not in GRANULARITIES:
            raise BadParameter("granularity must be one of " + ", ".join(GRANULARITIES))
        step = GRANULARITIES[granularity]
        start, end = _int_param(query, "start", True), _int_param(query, "end", True)
        limit = _int_param(query, "limit")
        if end < start:
            raise BadParameter("end must be after start")
        if limit is not None and not 1 <= limit <= MAX_CANDLES:
            raise BadParameter(f"limit must be between 1 and {MAX_CANDLES}")
        current = math.floor(now / step) * step
        first = -(-start // step) * step
        last = min(current, end // step * step)
        count = (last - first) // step + 1
        if count > MAX_CANDLES:
            raise BadParameter("start and end argument is invalid - number of candles requested "
                               f"should be less than {MAX_CANDLES}")
        if limit is not None and count > limit:
            first = last - (limit - 1) * step
        return cls(step, first, last)


# -------------------------------------------------------------------------------------------
# Faulty variants (see CoinbaseExchange.fault_body)

def _nan_json(endpoint: str, doc: Any) -> Any:
    nan = float("nan")   # json.dumps writes the bare token NaN
    if endpoint == "product_book":
        doc["pricebook"]["bids"][0]["price"] = nan
    elif endpoint == "market_trades":
        doc["trades"][0]["price"] = nan
    elif endpoint == "candles":
        doc["candles"][0]["close"] = nan
    elif endpoint == "products":
        doc["products"][0]["price"] = nan
    elif endpoint == "time":
        doc["epochSeconds"] = nan
    else:
        doc["price"] = nan
    return doc


def _wrong_shape(endpoint: str, doc: Any) -> Any:
    if endpoint == "product_book":   # levels as [price, size] arrays (the Exchange API's shape)
        for side in ("bids", "asks"):
            doc["pricebook"][side] = [[level["price"], level["size"]]
                                      for level in doc["pricebook"][side]]
        return doc
    if endpoint == "candles":        # rows as arrays, as the Exchange API sends them
        doc["candles"] = [list(row.values()) for row in doc["candles"]]
        return doc
    if endpoint == "market_trades":  # an object where the list belongs
        doc["trades"] = {"trade": doc["trades"][0]} if doc["trades"] else {}
        return doc
    return [doc]                     # a list where an object belongs


def _crossed(endpoint: str, doc: Any, product: Product) -> Any:
    if endpoint == "product_book":   # every bid moved up to one tick above the best ask
        book = doc["pricebook"]
        ticks = [int(Decimal(level["price"]).scaleb(product.price_decimals))
                 for level in book["bids"]]
        best_ask = int(Decimal(book["asks"][0]["price"]).scaleb(product.price_decimals))
        shift = best_ask - ticks[0] + 1
        for level, tick in zip(book["bids"], ticks):
            level["price"] = product.price(tick + shift)
        return doc
    if endpoint == "product":        # a best bid above the best ask
        high, low = doc["high_24h"], doc["low_24h"]
        doc["best_bid_price"], doc["best_ask_price"] = high, low
        return doc
    return None


def _unsorted(endpoint: str, doc: Any) -> Any:
    if endpoint == "product_book":   # the first ten bids ascending
        bids = doc["pricebook"]["bids"]
        bids[:10] = reversed(bids[:10])
        return doc
    if endpoint == "market_trades":  # oldest first
        doc["trades"].reverse()
        return doc
    if endpoint == "candles":        # oldest first
        doc["candles"].reverse()
        return doc
    return None


def _bad_values(endpoint: str, doc: Any) -> Any:
    if endpoint == "product_book":
        book = doc["pricebook"]
        book["time"] = "0001-01-01T00:00:00Z"
        book["bids"][0]["size"] = "-" + book["bids"][0]["size"]
        book["asks"][0]["price"] = "0"
    elif endpoint == "market_trades":
        if doc["trades"]:
            trade = doc["trades"][0]
            trade.update(time="1970-01-01T00:00:00Z", price="0", size="-" + trade["size"])
    elif endpoint == "candles":
        rows = doc["candles"]
        rows[-1]["start"] = "0"
        row = rows[0]
        row["high"], row["low"] = row["low"], row["high"] + "1"   # high below low
        row["volume"] = "-" + row["volume"]
    elif endpoint == "products":
        doc["products"][0].update(price="0", volume_24h="-1")
    elif endpoint == "time":
        doc["epochSeconds"] = "-1"
    else:
        doc.update(price="0", volume_24h="-" + doc["volume_24h"])
    return doc


# -------------------------------------------------------------------------------------------
# The exchange as the server sees it

class CoinbaseExchange:
    """Coinbase Advanced Trade's public REST market data. `clock` is injectable so tests can
    move time; `rate_limit=(n, seconds)` answers 429 past n requests in any window."""

    name = "coinbase"

    def __init__(self, clock: Callable[[], float] = time.time,
                 products: Sequence[ProductSpec] = PRODUCTS,
                 rate_limit: tuple[int, float] | None = None) -> None:
        if len(products) > MAX_PAIRS:
            raise ValueError(f"at most {MAX_PAIRS} products (trade ids are numbered per product)")
        self.clock = clock
        self.products = {spec.product_id: Product(spec, i) for i, spec in enumerate(products)}
        self.rate_limit = rate_limit
        self._recent = RecentRequests()

    def routes(self) -> list[Route]:
        product = r"(?P<product>[^/]+)"
        return [
            Route(rf"{API}/product_book", self._limited(self.product_book), "product_book"),
            Route(rf"{API}/products", self._limited(self.list_products), "products"),
            Route(rf"{API}/products/{product}", self._limited(self.product), "product"),
            Route(rf"{API}/products/{product}/ticker", self._limited(self.market_trades),
                  "market_trades"),
            Route(rf"{API}/products/{product}/candles", self._limited(self.candles), "candles"),
            Route(r"/api/v3/brokerage/time", self._limited(self.server_time), "time"),
        ]

    # -- the simulator's own rate limit -----------------------------------------------------------

    def _limited(self, handler: Callable[[SimRequest], SimResponse]
                 ) -> Callable[[SimRequest], SimResponse]:
        def limited(request: SimRequest) -> SimResponse:
            return self.too_many_requests() if self._over_limit() else handler(request)
        return limited

    def _over_limit(self) -> bool:
        return self._recent.over(self.rate_limit)

    @staticmethod
    def too_many_requests() -> SimResponse:
        return SimResponse(429, RATE_LIMIT_PAGE.encode(), HTML)

    # -- endpoints ------------------------------------------------------------------------------

    def product_book(self, request: SimRequest) -> SimResponse:
        product_id = request.query.get("product_id", "")
        if not product_id:
            return error_response(400, "INVALID_ARGUMENT", "valid product_id is required")
        product = self.products.get(product_id)
        if product is None:
            return invalid_product()
        try:
            limit = _int_param(request.query, "limit")
        except BadParameter as error:
            return error_response(400, "INVALID_ARGUMENT", str(error))
        depth = min(max(1, limit), BOOK_MAX_DEPTH) if limit else BOOK_DEFAULT_DEPTH
        return json_response(product.book_document(self.clock(), depth))

    def list_products(self, request: SimRequest) -> SimResponse:
        now = self.clock()
        wanted = [p for p in request.query.get("product_ids", "").split(",") if p]
        products = [p for p in self.products.values()
                    if not wanted or p.spec.product_id in wanted]
        documents = [p.product_document(now) for p in products]
        return json_response({"products": documents, "num_products": len(documents),
                              "pagination": {"prev_cursor": "", "next_cursor": "",
                                             "has_next": False, "has_prev": False}})

    def product(self, request: SimRequest) -> SimResponse:
        product = self.products.get(request.path_params["product"])
        if product is None:
            return invalid_product()
        return json_response(product.product_document(self.clock()))

    def market_trades(self, request: SimRequest) -> SimResponse:
        product = self.products.get(request.path_params["product"])
        if product is None:
            return invalid_product()
        try:
            limit = _int_param(request.query, "limit", required=True)
            start, end = _int_param(request.query, "start"), _int_param(request.query, "end")
            if not 1 <= limit <= MAX_TRADES:
                raise BadParameter(f"limit must be between 1 and {MAX_TRADES}")
        except BadParameter as error:
            return error_response(400, "INVALID_ARGUMENT", str(error))
        return json_response(product.market_trades_document(self.clock(), limit, start, end))

    def candles(self, request: SimRequest) -> SimResponse:
        product = self.products.get(request.path_params["product"])
        if product is None:
            return invalid_product()
        now = self.clock()
        try:
            query = CandleQuery.parse(request.query, now)
        except BadParameter as error:
            return error_response(400, "INVALID_ARGUMENT", str(error))
        return json_response(product.candles_document(query.step, query.first, query.last, now))

    def server_time(self, request: SimRequest) -> SimResponse:
        now = self.clock()
        return json_response({"iso": rfc3339(now, 3), "epochSeconds": str(math.floor(now)),
                              "epochMillis": str(math.floor(now * 1000))})

    # -- fault hooks ----------------------------------------------------------------------------

    def fault_body(self, kind: str, request: SimRequest, params: dict[str, Any]) -> bytes | None:
        if kind == "exchange_error":
            reason = params.get("reason") or "valid product_id is required"
            return json.dumps(error_document(params.get("response_code") or "INVALID_ARGUMENT",
                                             reason)).encode()
        if request.endpoint is None:
            return None
        product, now = self._fault_product(request), self.clock()
        doc = self._fault_document(request, product, now)
        if kind == "nan_json":
            faulty = _nan_json(request.endpoint, doc)
        elif kind == "wrong_shape":
            faulty = _wrong_shape(request.endpoint, doc)
        elif kind == "crossed":
            faulty = _crossed(request.endpoint, doc, product)
        elif kind == "unsorted":
            faulty = _unsorted(request.endpoint, doc)
        elif kind == "bad_values":
            faulty = _bad_values(request.endpoint, doc)
        else:
            return None
        return None if faulty is None else json.dumps(faulty).encode()

    def huge_document(self, request: SimRequest) -> HugeDocument | None:
        product, now = self._fault_product(request), self.clock()
        if request.endpoint == "product_book":   # the normal bids, then asks without end
            doc = product.book_document(now, BOOK_DEFAULT_DEPTH)
            first_ask = int(Decimal(doc["pricebook"]["asks"][0]["price"])
                            .scaleb(product.price_decimals))
            doc["pricebook"]["asks"] = []
            head = json.dumps(doc)
            cut = head.index('"asks": []') + len('"asks": [')
            return HugeDocument(head[:cut].encode(), _endless_asks(product, first_ask),
                                head[cut:].encode())
        if request.endpoint == "market_trades":
            return HugeDocument(b'{"trades": [', _endless_trades(product, now),
                                b'], "best_bid": "1", "best_ask": "2"}')
        return None

    def _fault_product(self, request: SimRequest) -> Product:
        # Faults are wanted even for a product Coinbase does not list: render them for BTC-USD.
        wanted = request.path_params.get("product") or request.query.get("product_id", "")
        return self.products.get(wanted) or next(iter(self.products.values()))

    def _fault_document(self, request: SimRequest, product: Product, now: float) -> Any:
        """The endpoint's normal document, built leniently and big enough to break."""
        endpoint = request.endpoint
        if endpoint == "product_book":
            return product.book_document(now, BOOK_DEFAULT_DEPTH)
        if endpoint == "market_trades":   # a day back at most: some trades to break
            return product.market_trades_document(now, 100)
        if endpoint == "candles":
            try:
                query = CandleQuery.parse(request.query, now)
                first = min(query.first, query.last - query.step)
                return product.candles_document(query.step, first, query.last, now)
            except BadParameter:
                last = math.floor(now / 60) * 60
                return product.candles_document(60, last - 9 * 60, last, now)
        if endpoint == "products":
            return {"products": [p.product_document(now) for p in self.products.values()],
                    "num_products": len(self.products)}
        if endpoint == "time":
            return {"iso": rfc3339(now, 3), "epochSeconds": str(math.floor(now)),
                    "epochMillis": str(math.floor(now * 1000))}
        return product.product_document(now)


def _endless_asks(product: Product, first: int) -> Iterator[bytes]:
    """Ask levels one tick apart, ascending, formatted fast in batches."""
    size = product.size(round(product.market.spec.typical_amount * product.market.amount_scale))
    for start in itertools.count(first, 256):
        yield ", ".join(f'{{"price": "{product.price(p)}", "size": "{size}"}}'
                        for p in range(start, start + 256)).encode()


def _endless_trades(product: Product, now: float, batch: int = 256) -> Iterator[bytes]:
    """Older and older trades, priced like the last hour's, `batch` per item."""
    recent = product.recent_trades(now, 64) or [Trade(1, now, round(product.market.mid_ticks(now)),
                                                       1, 0)]
    newest = recent[0]
    for first in itertools.count(0, batch):
        trades = []
        for n in range(first, first + batch):
            model = recent[n % len(recent)]
            trades.append(
                f'{{"trade_id": "{newest.tid - n}", "product_id": "{product.spec.product_id}", '
                f'"price": "{product.price(model.price)}", "size": "{product.size(model.amount)}", '
                f'"time": "{rfc3339(newest.at - n / 4)}", '
                f'"side": "{"SELL" if model.side == 0 else "BUY"}", "bid": "", "ask": "", '
                f'"exchange": "coinbase"}}')
        yield ", ".join(trades).encode()


SIM_REST = CoinbaseExchange   # found by proj.sim.default_exchanges()
