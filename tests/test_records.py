import random
from decimal import Decimal
from operator import itemgetter

import pytest

from proj.records import (CollectorError, _strictly_ordered, canon_column, canon_decimal,
                          canon_levels, canon_pair_levels, canon_pairs, canon_price, check_candle,
                          check_order_book, decimal_key, to_ms)


@pytest.mark.parametrize("raw, canonical", [
    ("3802.90", "3802.9"), ("0.00000000", "0"), ("73241", "73241"), ("007.50", "7.5"),
    ("0.00000001", "0.00000001"), ("10", "10"), ("10.", "10"), (42, "42"), ("0", "0"),
])
def test_canonical_decimal(raw, canonical):
    assert canon_decimal(raw) == canonical


@pytest.mark.parametrize("raw", ["-1", "1e5", "", "abc", "1.2.3", 1.5, None, True, " 1", "NaN"])
def test_non_decimals_are_bad_schema(raw):
    with pytest.raises(CollectorError) as caught:
        canon_decimal(raw)
    assert caught.value.code == "bad_schema"


def test_decimal_key_orders_like_numbers():
    values = ["0", "0.45", "0.5", "1", "9.99", "10", "10.01", "100"]
    assert sorted(values, key=decimal_key) == values
    assert sorted(reversed(values), key=decimal_key) == values


def test_times_before_2009_are_refused():
    assert to_ms("1641343695681418", scale=1_000_000) == 1641343695681
    with pytest.raises(CollectorError):
        to_ms("0", scale=1)


def _book(bids, asks):
    return {"type": "order_book", "exchange": "x", "symbol": "BTC/USD", "timestamp": None,
            "received": 1700000000000, "nonce": None, "bids": bids, "asks": asks}


@pytest.mark.parametrize("bids, asks, problem", [
    ([["2", "1"], ["3", "1"]], [], "descending"),
    ([["2", "1"], ["2", "1"]], [], "descending"),
    ([], [["3", "1"], ["2", "1"]], "ascending"),
    ([["3", "1"]], [["3", "1"]], "crossed"),
    ([["4", "1"]], [["3", "1"]], "crossed"),
])
def test_book_invariants(bids, asks, problem):
    with pytest.raises(CollectorError, match=problem):
        check_order_book(_book(bids, asks))


def test_candle_bounds():
    candle = {"type": "candle", "exchange": "x", "symbol": "BTC/USD", "timeframe": "1m",
              "timestamp": 1700000000000, "received": 1700000000000, "open": "5", "high": "6",
              "low": "4", "close": "7", "volume": "1", "trades": None}
    with pytest.raises(CollectorError, match="close"):
        check_candle(candle)


def test_only_ascii_digits_make_a_decimal():
    with pytest.raises(CollectorError):
        canon_decimal("١٢٣")
    with pytest.raises(CollectorError):
        to_ms("١٢٣٤٥٦٧٨٩٠١٢٣")


def test_transient_exchange_errors_are_retryable():
    assert CollectorError("exchange_error", "EService:Unavailable", transient=True).retryable
    assert not CollectorError("exchange_error", "EQuery:Unknown asset pair").retryable


# ---- the whole-column fast paths agree with the value-by-value path -------------------------
# (property style: many generated values, the fast path either vouches for a column and gives
# exactly the per-value strings, or gives None and the caller goes value by value)

_ODD = ["", ".", "0", "00", "0.", ".5", "1e5", "1E-5", "١", "\n", "1\n2", "0.0", "-1", " 1",
        "1 ", "1.2.3", "0.000", "10.", "100", "007.50", "0.10", "+1", "1_0", "NaN", "inf"]


def _value(rng: random.Random):
    if rng.random() < 0.08:
        return rng.choice(_ODD + [5, 0, 1.5, None, True, [], {}])
    whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 5)))
    if rng.random() < 0.8:
        whole = whole.lstrip("0") or rng.choice(["0", "1", "00"])
    text = whole
    if rng.random() < 0.7:
        text += "." + "".join(rng.choice("01234567890000") for _ in range(rng.randint(0, 8)))
    return text


def _per_value(values, price):
    canon = canon_price if price else canon_decimal
    try:
        return [canon(v) for v in values]
    except CollectorError as exc:
        return exc


def test_canon_decimal_is_the_exact_trimmed_value():
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice("0123456789.") for _ in range(rng.randint(1, 9)))
        whole, dot, frac = text.partition(".")
        if not whole or "." in frac:
            with pytest.raises(CollectorError):
                canon_decimal(text)
            continue
        canonical = canon_decimal(text)
        assert Decimal(canonical) == Decimal(text)
        assert canonical == "0" or not canonical.startswith("0") or canonical.startswith("0.")
        assert not ("." in canonical and canonical.endswith(("0", ".")))


def test_canon_column_agrees_with_value_by_value():
    rng = random.Random(1)
    vouched = 0
    for _ in range(20_000):
        values = [_value(rng) for _ in range(rng.randint(0, 6))]
        for price in (True, False):
            fast = canon_column(list(values), price)
            if fast is None:
                continue
            vouched += 1
            assert list(fast) == _per_value(values, price), (values, price)
    assert vouched > 5_000


@pytest.mark.parametrize("values, price", [
    (["3802.90", "3802.89", "0.60000000", "10.00"], False),    # Bitstamp, Binance: trailing zeros
    (["30243.5", "30244", "0.08", "0"], False),                 # OKX, Coinbase: canonical already
    (["30243.5", "30244", "0.08"], True),
    (["0.35210000", "0.01000000"], True),
])
def test_canon_column_vouches_for_real_columns(values, price):
    assert canon_column(values, price) == _per_value(values, price)


def test_canon_column_leaves_bad_columns_to_the_exact_path():
    for values, price in ((["1", "0"], True), (["1", "0.000"], True), (["1", "1\n2"], False),
                          (["1", 2], False), (["1", "1e5"], False), (["00.5"], False),
                          (["١"], False), (["1", "-1"], False)):
        assert canon_column(values, price) is None


def test_canon_pairs_agrees_with_level_by_level():
    rng = random.Random(2)
    odd_levels = [["1"], ["1", "2", "3"], "12", {"1": 0, "2": 0}, 5, None, ("3", "4")]
    for _ in range(20_000):
        levels = [[_value(rng), _value(rng)] for _ in range(rng.randint(0, 5))]
        if rng.random() < 0.1:
            levels.insert(rng.randint(0, len(levels)), rng.choice(odd_levels))
        if rng.random() < 0.03:
            levels = rng.choice([0, None, "", {}, "ab"])
        try:
            expected = [[canon_price(p), canon_decimal(a)] for p, a in levels]
        except Exception as exc:  # noqa: BLE001 - the same error, whatever it is
            expected = (type(exc), str(exc))
        fast = canon_pairs(levels)
        if fast is not None:
            assert fast == expected, levels
        try:
            got = canon_pair_levels(levels)
        except Exception as exc:  # noqa: BLE001
            got = (type(exc), str(exc))
        assert got == expected, levels


def test_canon_levels_agrees_with_level_by_level():
    rng = random.Random(3)
    first, second = itemgetter(0), itemgetter(1)
    for _ in range(10_000):
        levels = [[_value(rng), _value(rng), "0", "1"] for _ in range(rng.randint(0, 5))]
        if rng.random() < 0.1:
            levels.insert(rng.randint(0, len(levels)), rng.choice([["1"], "12", {"a": 1}, 5]))
        try:
            expected = [[canon_price(level[0]), canon_decimal(level[1])] for level in levels]
        except Exception as exc:  # noqa: BLE001
            expected = (type(exc), str(exc))
        try:
            got = canon_levels(levels, first, second)
        except Exception as exc:  # noqa: BLE001
            got = (type(exc), str(exc))
        assert got == expected, levels


def test_fast_order_check_never_passes_an_unordered_side():
    rng = random.Random(4)
    for _ in range(30_000):
        prices = [rng.choice(["9.5", "10.5", "1.5", "10", "9", "10.05", "100", "99.99", "1.",
                              "10.50", "", "0.5", ".5", "9.50"])
                  if rng.random() < 0.3 else _value(rng) for _ in range(rng.randint(0, 5))]
        if not all(isinstance(p, str) for p in prices):
            continue
        side = [[p, "1"] for p in prices]
        keys = [decimal_key(p) for p in prices]
        for descending in (True, False):
            if _strictly_ordered(side, descending):
                pairs = list(zip(keys, keys[1:]))
                assert all((a > b) if descending else (a < b) for a, b in pairs), prices


def test_fast_order_check_vouches_for_sorted_sides_of_one_width():
    rng = random.Random(5)
    for _ in range(2_000):
        prices = {canon_decimal(f"{rng.randint(1000, 9999)}.{rng.randint(0, 999)}")
                  for _ in range(rng.randint(2, 30))}
        ordered = sorted(prices, key=decimal_key)
        assert _strictly_ordered([[p, "1"] for p in ordered], False)
        assert _strictly_ordered([[p, "1"] for p in reversed(ordered)], True)


@pytest.mark.parametrize("bids, ok", [
    (["10.5", "9.5", "1.5"], True),          # widths change: the exact path decides
    (["9.5", "10.5", "1.5"], False),         # in text order, not in number order
    (["100", "99.99", "99.9"], True),
    (["99.9", "99.90"], False),              # not canonical, but the same number
])
def test_book_order_across_widths(bids, ok):
    book = _book([[p, "1"] for p in bids], [])
    if ok:
        assert check_order_book(book) is book
    else:
        with pytest.raises(CollectorError, match="descending"):
            check_order_book(book)
