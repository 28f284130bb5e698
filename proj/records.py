"""The normalized records, their error object, and the invariants the schema cannot express.

Pure code: imports nothing of the project and does no I/O. The JSON Schemas in
../shared/schema are the contract; the checks here enforce the same rules at run time
(without jsonschema on the hot path) plus the orderings JSON Schema cannot state.
"""
from __future__ import annotations

import re

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
    if type(value) is str:
        # the hot path (every price and amount of every frame): plain str methods, no regex
        whole, dot, frac = value.partition(".")
        if whole.isdigit() and (frac.isdigit() or not frac) and value.isascii():
            whole = whole.lstrip("0") or "0"
            frac = frac.rstrip("0")
            return f"{whole}.{frac}" if frac else whole
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
    if not SYMBOL_RE.fullmatch(record.get("symbol") or ""):
        raise bad_schema(f"bad symbol {record.get('symbol')!r}")
    received = record.get("received")
    if not isinstance(received, int) or received < MIN_MS:
        raise bad_schema("bad received time")


def check_order_book(book: dict) -> dict:
    _check_common(book)
    bids, asks = book["bids"], book["asks"]
    for side, name, descending in ((bids, "bids", True), (asks, "asks", False)):
        keys = [decimal_key(price) for price, _ in side]
        for before, after in zip(keys, keys[1:]):
            if (before <= after) if descending else (before >= after):
                raise bad_schema(f"{name} not strictly {'descending' if descending else 'ascending'}")
    if bids and asks and decimal_key(bids[0][0]) >= decimal_key(asks[0][0]):
        raise bad_schema(f"crossed book: best bid {bids[0][0]} >= best ask {asks[0][0]}")
    return book


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
