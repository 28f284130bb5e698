"""The normalized records, their error object, and the invariants the schema cannot express.

Pure code: imports nothing of the project and does no I/O. The JSON Schemas in
../shared/schema are the contract; the checks here enforce the same rules at run time
(without jsonschema on the hot path) plus the orderings JSON Schema cannot state.
"""
from __future__ import annotations

import re
from itertools import chain, islice
from operator import gt, lt

ERROR_CODES = (
    "timeout", "network", "http_status", "rate_limited", "content_type",
    "bad_json", "bad_schema", "exchange_error", "too_large", "unsupported",
)
# Codes a later attempt may get past; the rest are answers, not accidents.
RETRYABLE_CODES = frozenset({"timeout", "network", "rate_limited", "content_type", "bad_json"})

KINDS = ("order_book", "trades", "ticker", "candles")
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w")
MIN_MS = 1230768000000  # 2009-01-01: nothing in crypto is older
SYMBOL_RE = re.compile(r"[A-Z0-9]+/[A-Z0-9]+")
_DECIMAL_RE = re.compile(r"([0-9]+)(?:\.([0-9]*))?")   # ASCII digits only: "١٢٣" is no price


class CollectorError(Exception):
    """A failed fetch as a value: becomes the error object of error.schema.json."""

    def __init__(self, code: str, detail: str = "", status: int | None = None,
                 retry_after: float | None = None, transient: bool = False):
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.transient = transient   # the exchange said its trouble is passing

    @property
    def retryable(self) -> bool:
        if self.transient:
            return True
        if self.code in ("http_status", "exchange_error"):   # a server error may pass
            return self.status is not None and self.status >= 500
        return self.code in RETRYABLE_CODES

    def to_dict(self, **context) -> dict:
        err = {"err": self.code}
        if self.detail:
            err["detail"] = self.detail.splitlines()[0][:500]
        if self.status is not None:
            err["status"] = self.status
        err.update({k: v for k, v in context.items() if v is not None})
        return err


def is_error(value) -> bool:
    return isinstance(value, dict) and "err" in value


def bad_schema(detail: str) -> CollectorError:
    return CollectorError("bad_schema", detail)


# ---- canonical decimal strings ----------------------------------------------------------

def canon_decimal(value) -> str:
    """'3802.90' -> '3802.9', '0.00000000' -> '0', 73241 -> '73241'.

    Strings are the exchanges' exact values and are only trimmed, never rounded. Floats are
    refused: a float price has already lost the exchange's exact value.
    """
    if type(value) is str and value.isascii():
        # the hot path (every price and amount of every frame): plain str methods, no regex
        whole, dot, frac = value.partition(".")
        if whole.isdigit() and (frac.isdigit() or not frac):
            if whole[0] == "0" and len(whole) > 1:       # leading zeros: rare
                whole = whole.lstrip("0") or "0"
                value = f"{whole}.{frac}" if dot else whole
            if dot:     # trailing zeros, then a bare point ("10." and "0.00" too)
                value = value.rstrip("0")
                if value[-1] == ".":
                    value = value[:-1]
            return value
        match = None
    elif isinstance(value, int) and not isinstance(value, bool):
        match = _DECIMAL_RE.fullmatch(str(value))
    else:
        match = None
    if match is None:
        raise bad_schema(f"not a non-negative decimal: {value!r:.40}")
    whole, frac = match.groups()
    whole = whole.lstrip("0") or "0"
    frac = (frac or "").rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def canon_price(value) -> str:
    price = canon_decimal(value)
    if price == "0":
        raise bad_schema("price is zero")
    return price


def canon_optional_price(value) -> str | None:
    return None if value is None or value == "" else canon_price(value)


def canon_optional_amount(value) -> str | None:
    return None if value is None or value == "" else canon_decimal(value)


# Whole columns at once: the hot path of order books. The values are joined by "\n" and one
# regex pass (possessive and atomic groups: linear, no backtracking) checks them all; only
# values with trailing zeros are then touched one by one. A column the fast path cannot vouch
# for gives None: the caller then takes the value-by-value path (canon_price, canon_decimal),
# which gives the same strings and raises the exact error of the first bad value.
_AMOUNT = r"(?>0|[1-9][0-9]*+)(?:\.[0-9]*+(?<=[1-9]))?+"                 # canonical, maybe 0
_PRICE = r"(?>[1-9][0-9]*+(?:\.[0-9]*+(?<=[1-9]))?+|0\.[0-9]*+(?<=[1-9]))"   # canonical, > 0
_AMOUNT_POINT = r"(?>0|[1-9][0-9]*+)\.[0-9]*+"          # with a point: rstrip makes it canonical
_PRICE_POINT = r"(?>[1-9][0-9]*+\.[0-9]*+|0\.0*+[1-9][0-9]*+)"                   # > 0 too


def _column(one: str):
    return re.compile(f"{one}(?:\n{one})*+")


_COLUMNS = {  # price?: (canonical as they are, all with a point: trailing zeros to cut)
    True: (_column(_PRICE), _column(_PRICE_POINT)),
    False: (_column(_AMOUNT), _column(_AMOUNT_POINT)),
}
_PAIRS_POINT = re.compile(f"{_PRICE_POINT}\n{_AMOUNT_POINT}(?:\n{_PRICE_POINT}\n{_AMOUNT_POINT})*+")


def canon_column(values: list, price: bool = False) -> list | None:
    """[canon_price(v) or canon_decimal(v) for v in values] for a list of strings, or None
    when the fast path cannot vouch for them (then the caller goes value by value)."""
    if not values:
        return []
    try:
        joined = "\n".join(values)
    except TypeError:            # not all strings
        return None
    if joined.count("\n") != len(values) - 1:    # a value of its own holds a "\n"
        return None
    canonical, pointed = _COLUMNS[price]
    if canonical.fullmatch(joined):
        return values
    if pointed.fullmatch(joined):
        return [value.rstrip("0").rstrip(".") for value in values]
    return None


def canon_pairs(levels: list) -> list | None:
    """[[canon_price(p), canon_decimal(a)] for p, a in levels], or None when the fast path
    cannot vouch for them (then the caller goes level by level)."""
    if type(levels) is not list:
        return None
    if not levels:
        return []
    try:
        joined = "\n".join(chain.from_iterable(levels))
    except TypeError:            # not all strings, or a level that is no list
        return None
    if joined.count("\n") != 2 * len(levels) - 1:
        return None
    try:
        if _PAIRS_POINT.fullmatch(joined):    # the usual case: fixed decimals, trailing zeros
            return [[p.rstrip("0").rstrip("."), a.rstrip("0").rstrip(".")] for p, a in levels]
        prices, amounts = zip(*levels, strict=True)
    except ValueError:           # a level of other than two values
        return None
    prices, amounts = canon_column(prices, True), canon_column(amounts)
    if prices is None or amounts is None:
        return None
    return [[p, a] for p, a in zip(prices, amounts)]


def canon_pair_levels(side) -> list:
    """[[canon_price(p), canon_decimal(a)] for p, a in side]: the same strings and the same
    errors, whole columns at a time when it can."""
    levels = canon_pairs(side)
    if levels is None:
        levels = [[canon_price(p), canon_decimal(a)] for p, a in side]
    return levels


def canon_levels(side, price_of, amount_of, exact=None) -> list:
    """[[canon_price(price_of(level)), canon_decimal(amount_of(level))] for level in side]
    (price_of, amount_of: operator.itemgetter) with the same strings and errors, whole
    columns at a time when it can. `exact` converts a value first on the value-by-value path
    (values the column path accepts are ones it would return unchanged)."""
    try:
        prices, amounts = list(map(price_of, side)), list(map(amount_of, side))
    except (LookupError, TypeError):
        prices = amounts = None
    else:
        prices, amounts = canon_column(prices, True), canon_column(amounts)
    if prices is None or amounts is None:
        fix = exact or (lambda value: value)
        return [[canon_price(fix(price_of(level))), canon_decimal(fix(amount_of(level)))]
                for level in side]
    return [[p, a] for p, a in zip(prices, amounts)]


def decimal_key(canonical: str) -> tuple:
    """Sort key of a canonical decimal string, exact and without Decimal objects.

    Canonical strings have no leading zeros, so a longer whole part is a larger number,
    and fraction digits compare as text ('5' > '45', as 0.5 > 0.45).
    """
    whole, _, frac = canonical.partition(".")
    return (len(whole), whole, frac)


def to_ms(value, scale: int = 1000) -> int:
    """An integer time in units of 1/scale s (int or digit string) to integer milliseconds."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_schema(f"not an integer time: {value!r:.40}")
    ms = value * 1000 // scale
    if ms < MIN_MS:
        raise bad_schema(f"time before 2009: {value!r}")
    return ms


# ---- record checks ------------------------------------------------------------------------

def _check_common(record: dict) -> None:
    symbol = record.get("symbol")
    if type(symbol) is not str or symbol not in _GOOD_SYMBOLS:   # a stream has few symbols
        if not SYMBOL_RE.fullmatch(symbol or ""):
            raise bad_schema(f"bad symbol {symbol!r}")
        if len(_GOOD_SYMBOLS) < 10_000 and type(symbol) is str:
            _GOOD_SYMBOLS.add(symbol)
    received = record.get("received")
    if not isinstance(received, int) or received < MIN_MS:
        raise bad_schema("bad received time")


def check_order_book(book: dict) -> dict:
    _check_common(book)
    bids, asks = book["bids"], book["asks"]
    for side, name, descending in ((bids, "bids", True), (asks, "asks", False)):
        if _strictly_ordered(side, descending):
            continue
        keys = [decimal_key(price) for price, _ in side]
        for before, after in zip(keys, keys[1:]):
            if (before <= after) if descending else (before >= after):
                raise bad_schema(f"{name} not strictly {'descending' if descending else 'ascending'}")
    if bids and asks and decimal_key(bids[0][0]) >= decimal_key(asks[0][0]):
        raise bad_schema(f"crossed book: best bid {bids[0][0]} >= best ask {asks[0][0]}")
    return book


_GOOD_SYMBOLS: set = set()


def _strictly_ordered(side: list, descending: bool) -> bool:
    """True if the side's prices are strictly ordered, proven the cheap way: when every price
    has the same number of whole digits (one regex pass) string order is decimal_key order.
    False means "not proven" (check_order_book then compares decimal_key tuples).

    With equal whole parts of W digits and a non-empty fraction after any point, comparing
    "W digits[.digits]" texts compares (len(whole), whole, frac) exactly: the wholes first,
    then a missing fraction sorts before any fraction, then the fraction digits as text.
    """
    prices = [price for price, _ in side]      # unpacks (and fails) as the exact path does
    if len(prices) < 2:
        return False                           # nothing to gain: the exact path is as quick
    try:
        joined = "\n".join(prices)
    except TypeError:
        return False
    first = prices[0]
    point = first.find(".")
    pattern = _same_width_pattern(point if point >= 0 else len(first))
    if pattern is None or joined.count("\n") != len(prices) - 1 or not pattern.fullmatch(joined):
        return False
    return all(map(gt if descending else lt, prices, islice(prices, 1, None)))


_SAME_WIDTH: dict = {}


def _same_width_pattern(width: int):
    pattern = _SAME_WIDTH.get(width)
    if pattern is None:
        if width > 40:
            return None
        one = f"[0-9]{{{width}}}+(?:\\.[0-9]++)?+"
        pattern = _SAME_WIDTH[width] = re.compile(f"{one}(?:\n{one})*+")
    return pattern


def check_trade(trade: dict) -> dict:
    _check_common(trade)
    if trade["side"] not in ("buy", "sell", None):
        raise bad_schema(f"bad side {trade['side']!r}")
    if not trade["id"]:
        raise bad_schema("empty trade id")
    return trade


def check_ticker(ticker: dict) -> dict:
    _check_common(ticker)
    bid, ask = ticker["bid"], ticker["ask"]
    if bid is not None and ask is not None and decimal_key(bid) > decimal_key(ask):
        raise bad_schema(f"ticker bid {bid} above ask {ask}")
    return ticker


def check_candle(candle: dict) -> dict:
    _check_common(candle)
    if candle["timeframe"] not in TIMEFRAMES:
        raise bad_schema(f"bad timeframe {candle['timeframe']!r}")
    low, high = decimal_key(candle["low"]), decimal_key(candle["high"])
    for name in ("open", "close"):
        if not low <= decimal_key(candle[name]) <= high:
            raise bad_schema(f"candle {name} {candle[name]} outside low..high")
    return candle
