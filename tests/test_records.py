import pytest

from proj.records import CollectorError, canon_decimal, check_candle, check_order_book, decimal_key, to_ms


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
