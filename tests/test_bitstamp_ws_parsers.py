"""Bitstamp's websocket rules and parsers against real recorded frames."""
import pytest

from proj.exchanges import get_exchange
from proj.records import CollectorError

from .schema import FIXTURES, assert_valid, fixture_bytes

bitstamp = get_exchange("bitstamp")
RECEIVED = 1641343700000


def test_live_trade_uses_the_exact_strings():
    text = fixture_bytes("bitstamp/ws_live_trades_trade_ethusd.json").decode()
    assert bitstamp.ws_classify(text) == ("data", "live_trades_ethusd")
    [trade] = bitstamp.parse_ws(text, RECEIVED)
    assert_valid(trade)
    assert trade == {"type": "trade", "exchange": "bitstamp", "symbol": "ETH/USD", "id": "216000477",
                     "timestamp": 1641343699596, "received": RECEIVED, "side": "buy",
                     "price": "3805.44", "amount": "0.0792"}


@pytest.mark.parametrize("name, what", [
    ("ws_subscription_succeeded.json", "ack"),
    ("ws_subscribe_request_live_trades.json", "unknown"),   # what the client sends, not data
])
def test_control_frames_are_classified(name, what):
    assert bitstamp.ws_classify(fixture_bytes(f"bitstamp/{name}").decode())[0] == what


@pytest.mark.parametrize("text, what", [
    ('{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}', "heartbeat"),
    ('{"event": "bts:request_reconnect", "channel": "", "data": ""}', "reconnect"),
    ('{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription string."}}', "error"),
    ("not json at all", "unknown"),
])
def test_documented_control_frames(text, what):
    assert bitstamp.ws_classify(text)[0] == what


def test_every_trade_of_the_recorded_sequence():
    lines = (FIXTURES / "bitstamp/sequences/ws_ethusd_diff_order_book_and_trades.jsonl").read_text().splitlines()
    trades = [line for line in lines if bitstamp.ws_classify(line) == ("data", "live_trades_ethusd")]
    assert trades
    for line in trades:
        records = bitstamp.parse_ws(line, RECEIVED)
        assert_valid(records)
        assert records[0]["symbol"] == "ETH/USD"


def test_order_book_snapshot_frame():
    rest = fixture_bytes("bitstamp/rest_order_book_usdtusd.json").decode()
    frame = '{"data": %s, "channel": "order_book_usdtusd", "event": "data"}' % rest
    assert bitstamp.ws_classify(frame) == ("data", "order_book_usdtusd")
    [book] = bitstamp.parse_ws(frame, RECEIVED)
    assert_valid(book)
    assert book["symbol"] == "USDT/USD" and book["bids"][0] == ["0.99948", "3105.20768"]


@pytest.mark.parametrize("text, code", [
    ("garbage", "bad_json"),
    ('{"data":{"id":1},"channel":"live_trades_btcusd","event":"trade"}', "bad_schema"),
    ('{"data":{},"channel":"diff_order_book_ethusd","event":"data"}', "bad_schema"),
])
def test_bad_frames_get_codes(text, code):
    with pytest.raises(CollectorError) as caught:
        bitstamp.parse_ws(text, RECEIVED)
    assert caught.value.code == code


def test_subscriptions():
    messages = bitstamp.ws_subscribe_messages(["BTC/USD"], ["trades", "order_book"])
    assert messages == ['{"event":"bts:subscribe","data":{"channel":"live_trades_btcusd"}}',
                        '{"event":"bts:subscribe","data":{"channel":"order_book_btcusd"}}']
    recorded = fixture_bytes("bitstamp/ws_subscribe_request_live_trades.json").decode().strip()
    assert messages[0] == recorded.replace("ethusd", "btcusd")
