"""Bitstamp's parsers against real recorded payloads (../shared/fixtures/bitstamp)."""
import pytest

from proj.exchanges import get_exchange
from proj.records import CollectorError

from .schema import assert_valid, fixture_bytes

bitstamp = get_exchange("bitstamp")
RECEIVED = 1710328300000


def test_order_book_from_real_payload():
    book = bitstamp.parse_rest("order_book", fixture_bytes("bitstamp/rest_order_book_ethusd.json"),
                               "ETH/USD", RECEIVED)
    assert_valid(book)
    assert book["timestamp"] == 1641343695681           # microtimestamp, in ms
    assert book["bids"][0] == ["3802.9", "0.6"]         # canonical strings, exact
    assert len(book["bids"]) > 100 and len(book["asks"]) > 100
    limited = bitstamp.parse_rest("order_book", fixture_bytes("bitstamp/rest_order_book_usdtusd.json"),
                                  "USDT/USD", RECEIVED, limit=5)
    assert_valid(limited)
    assert len(limited["bids"]) == 5 and limited["bids"][0][0] == "0.99948"


def test_trades_from_real_payload():
    trades = bitstamp.parse_rest("trades", fixture_bytes("bitstamp/rest_transactions_btcusdt.json"),
                                 "BTC/USDT", RECEIVED)
    assert_valid(trades)
    assert trades == [{"type": "trade", "exchange": "bitstamp", "symbol": "BTC/USDT",
                       "id": "326595342", "timestamp": 1710327533000, "received": RECEIVED,
                       "side": "buy", "price": "73254", "amount": "0.00055284"}]


def test_ticker_from_real_payload():
    ticker = bitstamp.parse_rest("ticker", fixture_bytes("bitstamp/rest_ticker_btcusdt.json"),
                                 "BTC/USDT", RECEIVED)
    assert_valid(ticker)
    assert ticker["last"] == "73285" and ticker["open"] == "72144"   # open_24, the 24 h open
    assert ticker["timestamp"] == 1710328241000 and ticker["volume"] == "135.29692054"


def test_candles_from_real_payload():
    candles = bitstamp.parse_rest("candles", fixture_bytes("bitstamp/rest_ohlc_btcusdt_3600.json"),
                                  "BTC/USDT", RECEIVED, timeframe="1h")
    assert_valid(candles)
    assert candles[0]["timestamp"] == 1710327600000 and candles[0]["high"] == "73293"


def test_error_envelope_is_exchange_error_with_reason():
    with pytest.raises(CollectorError) as caught:
        bitstamp.parse_rest("ticker", fixture_bytes("bitstamp/rest_error_response_code.json"),
                            "BTC/USD", RECEIVED)
    assert caught.value.code == "exchange_error"
    assert "80% below the market price" in caught.value.detail
    assert_valid(caught.value.to_dict())


@pytest.mark.parametrize("body, code", [
    (b"", "bad_json"), (b'{"bids": [', "bad_json"), (b'{"bids": [[NaN, "1"]]}', "bad_json"),
    (b'{"foo": 1}', "bad_schema"), (b"[1, 2]", "bad_schema"),
    (b'{"timestamp": "1", "microtimestamp": "1641343695681418", "bids": [["-1", "1"]], "asks": []}', "bad_schema"),
    (b'{"timestamp": "1", "microtimestamp": "1641343695681418", "bids": [[1.5, "1"]], "asks": []}', "bad_schema"),
])
def test_bad_bodies_get_codes(body, code):
    with pytest.raises(CollectorError) as caught:
        bitstamp.parse_rest("order_book", body, "BTC/USD", RECEIVED)
    assert caught.value.code == code


def test_symbols_map_both_ways():
    assert bitstamp.to_exchange_symbol("BTC/USD") == "btcusd"
    assert bitstamp.from_exchange_symbol("btcusdt") == "BTC/USDT"
    assert bitstamp.from_exchange_symbol("ethbtc") == "ETH/BTC"
    pairs = __import__("orjson").loads(fixture_bytes("bitstamp/rest_trading_pairs_info.json"))
    for pair in pairs:
        assert bitstamp.from_exchange_symbol(pair["url_symbol"]) == pair["name"]
        assert bitstamp.to_exchange_symbol(pair["name"]) == pair["url_symbol"]


def test_unsupported_timeframe():
    with pytest.raises(CollectorError) as caught:
        bitstamp.rest_request("candles", "BTC/USD", "1w")
    assert caught.value.code == "unsupported"
