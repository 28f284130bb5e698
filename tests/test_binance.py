"""Binance's adapter: parsers against the real recorded payloads (../shared/fixtures/binance),
symbols both ways, requests and their weights, the error envelope, and the websocket rules."""
import json

import pytest

from proj.exchanges import get_exchange
from proj.records import CollectorError

from .schema import FIXTURES, assert_valid, fixture_bytes

binance = get_exchange("binance")
RECEIVED = 1634944401999
CAPTURE = FIXTURES / "captures" / "BINANCE.ws.1.0"
# The documented partial-depth payload (web-socket-streams.md, "Partial Book Depth Streams"):
# no recording of a depth<N> stream exists in the fixtures, so the docs' example stands in.
DOCS_PARTIAL_DEPTH = {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}


def parse(kind, name, symbol, **kwargs):
    return binance.parse_rest(kind, fixture_bytes(f"binance/{name}"), symbol, RECEIVED, **kwargs)


# ---- REST bodies ---------------------------------------------------------------------------

def test_order_book_from_real_payload():
    book = parse("order_book", "rest_depth_btcusdt_limit10.json", "BTC/USDT")
    assert_valid(book)
    assert book["nonce"] == 14527958487 and book["timestamp"] is None
    assert book["bids"][0] == ["60650", "0.00213"] and book["asks"][0] == ["60650.01", "0.61982"]
    assert len(book["bids"]) == len(book["asks"]) == 10


def test_deep_order_book_and_limit():
    book = parse("order_book", "rest_depth_nknusdt_limit1000.json", "NKN/USDT")
    assert_valid(book)
    assert book["nonce"] == 499869752
    assert len(book["bids"]) == 609 and len(book["asks"]) == 1000
    assert book["bids"][-1] == ["0.00212", "117924.5"] and book["asks"][0] == ["0.3525", "3959"]
    limited = parse("order_book", "rest_depth_nknusdt_limit1000.json", "NKN/USDT", limit=5)
    assert_valid(limited)
    assert len(limited["bids"]) == len(limited["asks"]) == 5 and limited["bids"][0][0] == "0.3521"


def test_trades_from_real_payload():
    trades = parse("trades", "rest_trades_btcusdt.json", "BTC/USDT")
    assert_valid(trades)
    assert len(trades) == 10
    assert trades[0] == {"type": "trade", "exchange": "binance", "symbol": "BTC/USDT",
                         "id": "1111468873", "timestamp": 1634942949263, "received": RECEIVED,
                         "side": "sell",   # isBuyerMaker: the taker sold
                         "price": "60650", "amount": "0.02924"}
    assert trades[1]["side"] == "buy" and trades[1]["price"] == "60650.01"
    assert [int(t["id"]) for t in trades] == sorted(int(t["id"]) for t in trades)   # oldest first
    last_two = parse("trades", "rest_trades_btcusdt.json", "BTC/USDT", limit=2)
    assert [t["id"] for t in last_two] == ["1111468881", "1111468882"]


def test_ticker_from_real_payload():
    ticker = parse("ticker", "rest_ticker_24hr_btcusdt.json", "BTC/USDT")
    assert_valid(ticker)
    assert ticker == {"type": "ticker", "exchange": "binance", "symbol": "BTC/USDT",
                      "timestamp": 1634944401452, "received": RECEIVED,
                      "bid": "60755.18", "ask": "60755.19", "last": "60755.18",
                      "open": "62636.13", "high": "63732.39", "low": "60000",
                      "volume": "53076.8465", "quote_volume": "3289695271.6771771",
                      "vwap": "61979.85540978"}


def test_ticker_zero_prices_mean_none():
    doc = json.loads(fixture_bytes("binance/rest_ticker_24hr_btcusdt.json"))
    doc.update(bidPrice="0.00000000", askPrice="0.00000000")   # an empty book
    ticker = binance.parse_rest("ticker", json.dumps(doc).encode(), "BTC/USDT", RECEIVED)
    assert_valid(ticker)
    assert ticker["bid"] is None and ticker["ask"] is None


def test_candles_from_real_payload():
    candles = parse("candles", "rest_klines_btcusdt_1m.json", "BTC/USDT", timeframe="1m")
    assert_valid(candles)
    assert len(candles) == 10
    assert candles[0] == {"type": "candle", "exchange": "binance", "symbol": "BTC/USDT",
                          "timeframe": "1m", "timestamp": 1634943780000, "received": RECEIVED,
                          "open": "60685.22", "high": "60729.84", "low": "60670.9",
                          "close": "60719.27", "volume": "21.63272", "trades": 617}
    assert candles[-1]["trades"] == 7
    assert len(parse("candles", "rest_klines_btcusdt_1m.json", "BTC/USDT", timeframe="1m",
                     limit=3)) == 3


@pytest.mark.parametrize("name, words", [
    ("rest_error_invalid_symbol.json", "Invalid symbol. (code -1121)"),
    ("rest_error_451_restricted_location.json", "restricted location"),
])
def test_error_bodies_are_exchange_errors(name, words):
    for kind in ("order_book", "trades", "ticker"):
        with pytest.raises(CollectorError) as caught:
            parse(kind, name, "BTC/USDT")
        assert caught.value.code == "exchange_error" and words in caught.value.detail
        assert_valid(caught.value.to_dict())


def test_too_much_weight_envelope_is_rate_limited():
    body = (b'{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request '
            b'weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling '
            b'the API."}')
    with pytest.raises(CollectorError) as caught:
        binance.parse_rest("order_book", body, "BTC/USDT", RECEIVED)
    assert caught.value.code == "rate_limited" and "Too much request weight" in caught.value.detail


@pytest.mark.parametrize("kind, body, code", [
    ("order_book", b"", "bad_json"),
    ("order_book", b'{"lastUpdateId":1,"bids":[[NaN,"1"]],"asks":[]}', "bad_json"),
    ("order_book", b'{"lastUpdateId":1,"bids":[{"price":"1","qty":"1"}],"asks":[]}', "bad_schema"),
    ("order_book", b'{"lastUpdateId":"1","bids":[],"asks":[]}', "bad_schema"),
    ("order_book", b'{"lastUpdateId":1,"bids":[["1","1"]],"asks":[["0.5","1"]]}', "bad_schema"),
    ("order_book", b'{"lastUpdateId":1,"bids":[["1","1"],["2","1"]],"asks":[]}', "bad_schema"),
    ("trades", b'{"symbol":"BTCUSDT"}', "bad_schema"),
    ("trades", b'[{"id":1,"price":"1","qty":"1","time":1634942949263,"isBuyerMaker":"yes"}]',
     "bad_schema"),
    ("trades", b'[{"id":1,"price":1.5,"qty":"1","time":1634942949263,"isBuyerMaker":true}]',
     "bad_schema"),
    ("ticker", b'[{"symbol":"BTCUSDT"}]', "bad_schema"),
    ("candles", b'[[0,"1","1","1","1","1",59999,"1",1,"1","1","0"]]', "bad_schema"),
    ("candles", b'[[1634943780000,"1","1","2","1","1",0,"1",1,"1","1","0"]]', "bad_schema"),
])
def test_bad_bodies_get_codes(kind, body, code):
    with pytest.raises(CollectorError) as caught:
        binance.parse_rest(kind, body, "BTC/USDT", RECEIVED, timeframe="1m")
    assert caught.value.code == code


# ---- symbols, requests, weights -----------------------------------------------------------

@pytest.mark.parametrize("market, symbol", [
    ("BTCUSDT", "BTC/USDT"), ("ETHBTC", "ETH/BTC"), ("NKNUSDT", "NKN/USDT"),
    ("BTCFDUSD", "BTC/FDUSD"), ("USDCUSDT", "USDC/USDT"), ("BNBUSDC", "BNB/USDC"),
    ("RUNEEUR", "RUNE/EUR"), ("LRCBTC", "LRC/BTC"), ("BLZETH", "BLZ/ETH"), ("BTCTRY", "BTC/TRY"),
    ("ETHTUSD", "ETH/TUSD"), ("btcusdt", "BTC/USDT"),
])
def test_symbols_both_ways(market, symbol):
    assert binance.from_exchange_symbol(market) == symbol
    assert binance.to_exchange_symbol(symbol) == market.upper()


def test_unknown_market_is_refused():
    with pytest.raises(CollectorError) as caught:
        binance.from_exchange_symbol("FOOBAR")
    assert caught.value.code == "bad_schema"


def test_rest_requests():
    assert binance.rest_request("order_book", "BTC/USDT") == (
        "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 100})
    assert binance.rest_request("order_book", "BTC/USDT", limit=9000)[1]["limit"] == 5000
    assert binance.rest_request("trades", "ETH/BTC", limit=20) == (
        "/api/v3/trades", {"symbol": "ETHBTC", "limit": 20})
    assert binance.rest_request("ticker", "BTC/USDT") == ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"})
    assert binance.rest_request("candles", "BTC/USDT", "1w", 10) == (
        "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1w", "limit": 10})
    with pytest.raises(CollectorError) as caught:
        binance.rest_request("candles", "BTC/USDT", "2d")
    assert caught.value.code == "unsupported"


def test_weights_and_budget():
    assert binance.rate_limit == (6000, 60)
    assert [binance.request_weight("order_book", n) for n in (None, 100, 101, 500, 1000, 5000)] == \
        [5, 5, 25, 25, 50, 250]
    assert binance.request_weight("trades") == 25
    assert binance.request_weight("candles", 1000) == 2 and binance.request_weight("ticker") == 2
    assert binance.used_weight({"x-mbx-used-weight-1m": "1234"}) == 1234
    assert binance.used_weight({}) is None and binance.used_weight({"x-mbx-used-weight-1m": "?"}) is None


# ---- websocket ------------------------------------------------------------------------------

def test_connect_url_carries_the_streams():
    channels = binance.ws_channels(["BTC/USDT", "ETH/BTC"], ["trades", "order_book"])
    assert channels == ["btcusdt@trade", "ethbtc@trade", "btcusdt@depth20@100ms",
                        "ethbtc@depth20@100ms"]
    streams = "btcusdt@trade/btcusdt@depth20@100ms"
    for base, url in [
        ("wss://stream.binance.com:9443/stream", f"wss://stream.binance.com:9443/stream?streams={streams}"),
        ("wss://stream.binance.com:9443", f"wss://stream.binance.com:9443/stream?streams={streams}"),
        ("wss://stream.binance.com:9443/ws/", f"wss://stream.binance.com:9443/stream?streams={streams}"),
        ("ws://127.0.0.1:8801/binance/stream", f"ws://127.0.0.1:8801/binance/stream?streams={streams}"),
        ("ws://127.0.0.1:8801/binance", f"ws://127.0.0.1:8801/binance/stream?streams={streams}"),
    ]:
        assert binance.ws_connect_url(base, ["BTC/USDT"], ["trades", "order_book"]) == url
    assert binance.ws_subscribe_messages(["BTC/USDT"], ["trades"]) == []
    assert binance.ws_heartbeat_interval is None and binance.ws_heartbeat_message() is None
    with pytest.raises(CollectorError):
        binance.ws_channels(["BTC/USDT"], ["candles"])


def test_trade_frame_from_real_payload():
    text = fixture_bytes("binance/ws_combined_trade_ethusdt.json").decode()
    assert binance.ws_classify(text) == ("data", "ethusdt@trade")   # pretty-printed, too
    [trade] = binance.parse_ws(text, RECEIVED)
    assert_valid(trade)
    assert trade == {"type": "trade", "exchange": "binance", "symbol": "ETH/USDT",
                     "id": "705291099", "timestamp": 1639351062243, "received": RECEIVED,
                     "side": "sell", "price": "4149.74", "amount": "0.4387"}
    flipped = json.loads(text)
    flipped["data"]["m"] = False
    assert binance.parse_ws(json.dumps(flipped), RECEIVED)[0]["side"] == "buy"


def test_partial_depth_frame_takes_the_symbol_from_the_stream():
    for stream, symbol in [("bnbbtc@depth20@100ms", "BNB/BTC"), ("btcusdt@depth5", "BTC/USDT"),
                           ("ethusdt@depth10@1000ms", "ETH/USDT")]:
        text = json.dumps({"stream": stream, "data": DOCS_PARTIAL_DEPTH}, separators=(",", ":"))
        assert binance.ws_classify(text) == ("data", stream)
        [book] = binance.parse_ws(text, RECEIVED)
        assert_valid(book)
        assert book == {"type": "order_book", "exchange": "binance", "symbol": symbol,
                        "timestamp": None, "received": RECEIVED, "nonce": 160,
                        "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}


def test_recorded_depth_levels_as_a_partial_book():
    # the recorded REST depth's top 20 levels, framed the way @depth20@100ms frames them
    doc = json.loads(fixture_bytes("binance/rest_depth_nknusdt_limit1000.json"))
    data = {"lastUpdateId": doc["lastUpdateId"], "bids": doc["bids"][:20], "asks": doc["asks"][:20]}
    [book] = binance.parse_ws(json.dumps({"stream": "nknusdt@depth20@100ms", "data": data}), RECEIVED)
    assert_valid(book)
    assert book["symbol"] == "NKN/USDT" and len(book["bids"]) == 20 and book["nonce"] == 499869752


@pytest.mark.parametrize("name, stream", [
    ("ws_combined_depthUpdate_nknusdt.json", "nknusdt@depth@100ms"),
    ("ws_combined_aggTrade_nknusdt.json", "nknusdt@aggTrade"),
    ("ws_combined_bookTicker_nknusdt.json", "nknusdt@bookTicker"),
    ("ws_combined_kline_1m_nknusdt.json", "nknusdt@kline_1m"),
])
def test_other_recorded_streams_are_data_but_not_records(name, stream):
    text = fixture_bytes(f"binance/{name}").decode()
    assert binance.ws_classify(text) == ("data", stream)
    with pytest.raises(CollectorError) as caught:   # diffs, aggregates, klines: not our records
        binance.parse_ws(text, RECEIVED)
    assert caught.value.code == "bad_schema"


def test_every_recorded_frame_is_classified_by_its_stream():
    lines = (FIXTURES / "binance/sequences/ws_nknusdt_depth_100ms.jsonl").read_text().splitlines()
    assert len(lines) == 150
    assert {binance.ws_classify(line) for line in lines} == {("data", "nknusdt@depth@100ms")}
    received = [line.split(": ", 1)[1] for line in CAPTURE.read_text().splitlines()
                if line[:1].isdigit()]   # "ts: frame"; the first line is the URL
    assert len(received) == 265
    for frame in received:
        what, channel = binance.ws_classify(frame)
        assert what == "data" and channel == json.loads(frame)["stream"]


@pytest.mark.parametrize("text, what", [
    ('{"result":null,"id":1}', "ack"),
    ('{"result":["btcusdt@trade"],"id":3}', "ack"),
    ('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}', "error"),
    ('{"code": 0, "msg": "Unknown property","id": 5}', "error"),
    ('{"error":{"code":2,"msg":"Invalid request: missing field `method`"},"id":1}', "error"),
    ('{"event":{"e":"serverShutdown","E":1770123456789}}', "reconnect"),
    ('{"e":"serverShutdown","E":1770123456789}', "reconnect"),
    ('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}', "reconnect"),
    ("not json at all", "unknown"),
])
def test_control_frames_are_classified(text, what):
    assert binance.ws_classify(text)[0] == what


def test_raw_payload_without_the_combined_wrapper_is_not_data():
    text = fixture_bytes("binance/ws_24hrTicker_docs_example.json").decode()
    assert binance.ws_classify(text)[0] == "unknown"
    with pytest.raises(CollectorError) as caught:
        binance.parse_ws(text, RECEIVED)
    assert caught.value.code == "bad_schema"


@pytest.mark.parametrize("text, code", [
    ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1' , "bad_json"),
    ('{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"q":"1","T":1639351062243,'
     '"m":true}}', "bad_schema"),
    ('{"stream":"btcusdt@trade","data":{"e":"unknownEvent","E":1639351062243}}', "bad_schema"),
    ('{"stream":"btcusdt@depth20@100ms","data":{"bids":[],"asks":[]}}', "bad_schema"),
    ('{"stream":"xyz@depth20@100ms","data":{"lastUpdateId":1,"bids":[],"asks":[]}}', "bad_schema"),
])
def test_bad_frames_get_codes(text, code):
    with pytest.raises(CollectorError) as caught:
        binance.parse_ws(text, RECEIVED)
    assert caught.value.code == code


def test_quote_split_prefers_the_common_market():
    from proj.exchanges import get_exchange
    binance = get_exchange("binance")
    assert binance.from_exchange_symbol("ADAEUR") == "ADA/EUR"     # not AD/AEUR
    assert binance.from_exchange_symbol("GALAEUR") == "GALA/EUR"
    assert binance.from_exchange_symbol("BNBIDR") == "BNB/IDR"     # not BN/BIDR
