"""Kraken: the parsers against real recorded payloads (../shared/fixtures/kraken), the
websocket rules, the real HTTP path against the simulator, and the console streamer."""
import json
import subprocess
import sys
import threading
import time

import orjson
import pytest

from proj.collect import fetch_records
from proj.exchanges import get_exchange
from proj.exchanges.kraken import rfc3339_ms, seconds_to_ms
from proj.records import CollectorError

from .conftest import ROOT
from .schema import FIXTURES, assert_valid, fixture_bytes

kraken = get_exchange("kraken")
RECEIVED = 1762820300000
DEPTH, TRADES, TICKER, OHLC = "/0/public/Depth", "/0/public/Trades", "/0/public/Ticker", "/0/public/OHLC"


def exact(name):
    """A fixture decoded with every number as its text (to compare with the exact source)."""
    return json.loads(fixture_bytes(name), parse_float=str)


# ---- REST parsers on the recorded bodies ------------------------------------------------------

def test_order_book_from_real_payload():
    book = kraken.parse_rest("order_book", fixture_bytes("kraken/rest_depth_xbtusdt.json"),
                             "BTC/USDT", RECEIVED)
    assert_valid(book)
    assert book["bids"][0] == ["105944.2", "0.002"] and book["asks"][0] == ["105944.3", "0.136"]
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["timestamp"] is None and book["nonce"] is None   # Kraken gives neither
    limited = kraken.parse_rest("order_book", fixture_bytes("kraken/rest_depth_xbtusdt.json"),
                                "BTC/USDT", RECEIVED, limit=2)
    assert_valid(limited)
    assert limited["bids"] == [["105944.2", "0.002"], ["105935.4", "0.024"]]


def test_trades_from_real_payload_exact_to_the_millisecond():
    trades = kraken.parse_rest("trades", fixture_bytes("kraken/rest_trades_xbtusdt.json"),
                               "BTC/USDT", RECEIVED)
    assert_valid(trades)
    assert len(trades) == 1000
    assert trades[0] == {"type": "trade", "exchange": "kraken", "symbol": "BTC/USDT",
                         "id": "10218208", "timestamp": 1762795433971, "received": RECEIVED,
                         "side": "buy", "price": "105433.6", "amount": "0.00027625"}
    assert trades[-1]["side"] == "sell" and trades[-1]["id"] == "10219207"
    # every time, from the JSON float, equals the truncation of the recorded text
    rows = exact("kraken/rest_trades_xbtusdt.json")["result"]["XBTUSDT"]
    for trade, row in zip(trades, rows):
        whole, _, fraction = row[2].partition(".")
        assert trade["timestamp"] == int(whole) * 1000 + int((fraction + "000")[:3])
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    last = kraken.parse_rest("trades", fixture_bytes("kraken/rest_trades_xbtusdt.json"),
                             "BTC/USDT", RECEIVED, limit=3)
    assert [t["id"] for t in last] == ["10219205", "10219206", "10219207"]   # the newest


def test_trades_of_the_older_api_get_a_stable_id():
    doc = orjson.loads(fixture_bytes("kraken/rest_trades_xbtusdt.json"))
    doc["result"]["XBTUSDT"] = [row[:6] for row in doc["result"]["XBTUSDT"][:3]]   # no trade_id
    trades = kraken.parse_rest("trades", orjson.dumps(doc), "BTC/USDT", RECEIVED)
    assert_valid(trades)
    assert trades[0]["id"] == "1762795433.9717445_105433.6_0.00027625"
    assert trades == kraken.parse_rest("trades", orjson.dumps(doc), "BTC/USDT", RECEIVED)


def test_ticker_from_real_payload():
    ticker = kraken.parse_rest("ticker", fixture_bytes("kraken/rest_ticker_xbtusdt.json"),
                               "BTC/USDT", RECEIVED)
    assert_valid(ticker)
    assert ticker == {"type": "ticker", "exchange": "kraken", "symbol": "BTC/USDT",
                      "timestamp": None, "received": RECEIVED, "bid": "105944.2",
                      "ask": "105944.3", "last": "105899.4",
                      "open": None,   # "o" is today's open, not the 24 h window's
                      "high": "106613.1", "low": "104711", "volume": "163.28908096",
                      "quote_volume": None, "vwap": "105904.39279"}


def test_candles_from_real_payload():
    candles = kraken.parse_rest("candles", fixture_bytes("kraken/rest_ohlc_xbtusdt_1m.json"),
                                "BTC/USDT", RECEIVED, timeframe="1m")
    assert_valid(candles)
    rows = exact("kraken/rest_ohlc_xbtusdt_1m.json")["result"]["XBTUSDT"]
    assert len(candles) == len(rows) > 700
    assert candles[0]["timestamp"] == 1762777020000 and candles[0]["trades"] == 0
    assert candles[0]["volume"] == "0" and candles[0]["open"] == "106038.2"
    traded = next(c for c, row in zip(candles, rows) if row[7])
    assert traded["trades"] >= 1 and traded["volume"] != "0"
    last = kraken.parse_rest("candles", fixture_bytes("kraken/rest_ohlc_xbtusdt_1m.json"),
                             "BTC/USDT", RECEIVED, timeframe="1m", limit=2)
    assert [c["timestamp"] for c in last] == [1762820160000, 1762820220000]


@pytest.mark.parametrize("name, code, detail", [
    ("rest_error_unknown_asset_pair.json", "exchange_error", "EQuery:Unknown asset pair"),
    ("rest_error_too_many_requests.json", "rate_limited", "EGeneral:Too many requests"),
])
def test_recorded_error_envelopes(name, code, detail):
    body = fixture_bytes(f"kraken/{name}")
    assert kraken.error_reason(orjson.loads(body)) == detail
    with pytest.raises(CollectorError) as caught:
        kraken.parse_rest("ticker", body, "BTC/USD", RECEIVED)
    assert caught.value.code == code and caught.value.detail == detail
    assert_valid(caught.value.to_dict())


def test_error_messages_are_joined_and_warnings_are_not_errors():
    doc = {"error": ["EGeneral:Invalid arguments", "EQuery:Unknown asset pair"]}
    assert kraken.error_reason(doc) == "EGeneral:Invalid arguments; EQuery:Unknown asset pair"
    assert kraken.is_rate_limit_error({"error": ["EAPI:Rate limit exceeded"]})
    assert not kraken.is_rate_limit_error(doc)
    warned = orjson.loads(fixture_bytes("kraken/rest_ticker_xbtusdt.json"))
    warned["error"] = ["WGeneral:Something to know"]
    assert kraken.error_reason(warned) is None
    assert_valid(kraken.parse_rest("ticker", orjson.dumps(warned), "BTC/USDT", RECEIVED))


def test_result_keyed_by_the_canonical_name():
    doc = orjson.loads(fixture_bytes("kraken/rest_depth_xbtusdt.json"))
    doc["result"] = {"XXBTZUSD": doc["result"]["XBTUSDT"]}   # what XBTUSD is answered with
    assert_valid(kraken.parse_rest("order_book", orjson.dumps(doc), "BTC/USD", RECEIVED))
    with pytest.raises(CollectorError) as caught:   # an answer for another pair is refused
        kraken.parse_rest("order_book", orjson.dumps(doc), "ETH/USD", RECEIVED)
    assert caught.value.code == "bad_schema" and "XXBTZUSD" in caught.value.detail


@pytest.mark.parametrize("kind, body, code", [
    ("order_book", b"", "bad_json"),
    ("order_book", b'{"error": [], "result": {"XBTUSDT": {"bids": [', "bad_json"),
    ("order_book", b'{"error": [], "result": {"XBTUSDT": {"bids": [[NaN, "1", 1]], "asks": []}}}',
     "bad_json"),
    ("order_book", b'{"error": []}', "bad_schema"),
    ("order_book", b'{"error": [], "result": []}', "bad_schema"),
    ("order_book", b'{"error": [], "result": {"A": {}, "B": {}}}', "bad_schema"),
    ("order_book", b'{"error": [], "result": {"XBTUSDT": {"bids": [["-1", "1", 1]], "asks": []}}}',
     "bad_schema"),
    ("order_book", b'{"error": [], "result": {"XBTUSDT": {"bids": [[1.5, "1", 1]], "asks": []}}}',
     "bad_schema"),                                                  # a float price is refused
    ("order_book", b'{"error": [], "result": {"XBTUSDT": {"bids": [["2", "1", 1]], '
                   b'"asks": [["1", "1", 1]]}}}', "bad_schema"),     # crossed
    ("trades", b'{"error": [], "result": {"XBTUSDT": [["1", "1", 1762795433.9, "x", "l", "", 1]]}}',
     "bad_schema"),                                                  # unknown side
    ("trades", b'{"error": [], "result": {"XBTUSDT": [["1", "1", 0, "b", "l", "", 1]]}}',
     "bad_schema"),                                                  # time 0
    ("candles", b'{"error": [], "result": {"XBTUSDT": [[1762777020, "2", "1", "3", "2", "2", '
                b'"1", 1]], "last": 1}}', "bad_schema"),             # high below low
    ("ticker", b'{"error": [], "result": {"XBTUSDT": [1, 2]}}', "bad_schema"),
])
def test_bad_bodies_get_codes(kind, body, code):
    with pytest.raises(CollectorError) as caught:
        kraken.parse_rest(kind, body, "BTC/USDT", RECEIVED, timeframe="1m")
    assert caught.value.code == code


def test_times_to_milliseconds_without_float_arithmetic():
    assert seconds_to_ms(1762795433.9717445) == 1762795433971
    assert seconds_to_ms(1762795483.306824) == 1762795483306
    assert seconds_to_ms(1762820248) == 1762820248000
    assert seconds_to_ms("1762795433.9999999") == 1762795433999   # truncated, as to_ms does
    assert seconds_to_ms(1.7627954339e9) == 1762795433900          # repr 1762795433.9
    assert rfc3339_ms("2023-10-06T17:35:55.440295Z") == 1696613755440
    assert rfc3339_ms("2023-10-06T19:35:55.44+02:00") == 1696613755440
    assert rfc3339_ms("2023-10-04T16:25:00.000000000Z") == 1696436700000
    for bad in ("2023-10-06", "2023-13-06T17:35:55Z", "2023-10-06T17:35:55.Z", 1696613755):
        with pytest.raises(CollectorError):
            rfc3339_ms(bad)


# ---- symbols and requests ---------------------------------------------------------------------

def test_symbols_map_both_ways_for_every_recorded_pair():
    assert kraken.to_exchange_symbol("BTC/USD") == "XBTUSD"
    assert kraken.to_exchange_symbol("DOGE/USD") == "XDGUSD"
    assert kraken.to_exchange_symbol("ETH/BTC") == "ETHXBT"
    for market, symbol in (("XXBTZUSD", "BTC/USD"), ("XBTUSDT", "BTC/USDT"), ("XETHZEUR", "ETH/EUR"),
                           ("USDTZUSD", "USDT/USD"), ("XXDGXXBT", "DOGE/BTC"), ("XDGUSD", "DOGE/USD"),
                           ("XBT/USD", "BTC/USD"), ("BTC/USD", "BTC/USD"), ("XTZUSD", "XTZ/USD")):
        assert kraken.from_exchange_symbol(market) == symbol, market
    pairs = orjson.loads(fixture_bytes("kraken/rest_asset_pairs.json"))["result"]
    checked = 0
    for key, pair in pairs.items():
        if pair.get("wsname") is None:   # the ".d" dark-pool twins
            continue
        symbol = kraken.from_exchange_symbol(pair["wsname"])
        assert kraken.from_exchange_symbol(key) == symbol, key
        assert kraken.from_exchange_symbol(pair["altname"]) == symbol, pair["altname"]
        assert kraken.to_exchange_symbol(symbol) == pair["altname"], symbol
        checked += 1
    assert checked > 250


def test_rest_requests():
    assert kraken.rest_request("order_book", "BTC/USD", limit=1000) == (
        "/0/public/Depth", {"pair": "XBTUSD", "count": 500})
    assert kraken.rest_request("trades", "BTC/USDT") == ("/0/public/Trades", {"pair": "XBTUSDT"})
    assert kraken.rest_request("ticker", "DOGE/USD") == ("/0/public/Ticker", {"pair": "XDGUSD"})
    assert kraken.rest_request("candles", "ETH/USD", "4h") == (
        "/0/public/OHLC", {"pair": "ETHUSD", "interval": 240})
    for timeframe in ("3m", "2h", "6h", "12h"):
        with pytest.raises(CollectorError) as caught:
            kraken.rest_request("candles", "BTC/USD", timeframe)
        assert caught.value.code == "unsupported"
    assert kraken.rate_limit == (1, 1.0)


# ---- websocket ----------------------------------------------------------------------------------

def test_trade_frame_keeps_the_exact_decimals():
    text = fixture_bytes("kraken/ws_v2_trade_update_docs_derived.json").decode()
    assert kraken.ws_classify(text) == ("data", "trade:BTC/USD")
    trades = kraken.parse_ws(text, RECEIVED)
    assert_valid(trades)
    assert trades == [
        {"type": "trade", "exchange": "kraken", "symbol": "BTC/USD", "id": "10218208",
         "timestamp": 1696613755440, "received": RECEIVED, "side": "buy", "price": "105944.2",
         "amount": "0.00027625"},
        {"type": "trade", "exchange": "kraken", "symbol": "BTC/USD", "id": "10218209",
         "timestamp": 1696613756123, "received": RECEIVED, "side": "sell", "price": "105910.5",
         "amount": "0.0001246"}]


def test_book_snapshot_is_a_record_and_updates_are_not():
    snapshot = fixture_bytes("kraken/ws_v2_book_snapshot_docs_derived.json").decode()
    assert kraken.ws_classify(snapshot) == ("data", "book:BTC/USD")
    [book] = kraken.parse_ws(snapshot, RECEIVED)
    assert_valid(book)
    assert book["bids"] == [["105944.2", "0.136"], ["105935.4", "0.024"], ["105920.1", "0.052"]]
    assert book["asks"][0] == ["105944.3", "0.136"] and book["timestamp"] == 1696613755440
    update = fixture_bytes("kraken/ws_v2_book_update_docs_derived.json").decode()
    assert kraken.ws_classify(update) == ("alive", "book:BTC/USD")   # keeps the channel alive, not shipped
    assert kraken.parse_ws(update, RECEIVED) == []


@pytest.mark.parametrize("name, expected", [
    ("ws_v2_subscribe_response_docs_derived.json", ("ack", "ticker:BTC/USD")),
    ("ws_v2_pong_docs_derived.json", ("heartbeat", "")),
    ("ws_v2_ticker_snapshot_docs_derived.json", ("unknown", "")),   # not subscribed to
    ("ws_v2_ohlc_update_docs_derived.json", ("unknown", "")),
    ("ws_v1_heartbeat.json", ("unknown", "")),                      # websocket v1, not ours
    ("ws_v1_trade_xmrusd.json", ("unknown", "")),
    ("ws_v1_systemStatus.json", ("unknown", "")),
])
def test_recorded_control_frames(name, expected):
    assert kraken.ws_classify(fixture_bytes(f"kraken/{name}").decode()) == expected


@pytest.mark.parametrize("text, expected", [
    ('{"channel":"heartbeat"}', ("heartbeat", "")),
    ('{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":'
     '18239578009413566319,"system":"online","version":"2.0.10"}]}', ("ack", "")),
    ('{"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"BTC/USDT"},'
     '"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
     ("ack", "trade:BTC/USDT")),
    ('{"method":"unsubscribe","result":{"channel":"book","depth":25,"symbol":"ETH/USD"},'
     '"success":true}', ("ack", "book:ETH/USD")),
    ('{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,'
     '"symbol":"XBT/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
     ("error", "")),
    ('{"error":"Malformed request","success":false}', ("error", "")),
    ('{"method":"pong","req_id":7}', ("heartbeat", "")),
    ("not json at all", ("unknown", "")),
])
def test_documented_control_frames(text, expected):
    assert kraken.ws_classify(text) == expected


def test_kraken_has_no_reconnect_frame():
    """Kraken v2 closes a connection without announcing it (the streamer reconnects on the
    close): no frame it sends asks for a reconnect."""
    names = [p.name for p in (FIXTURES / "kraken").glob("ws_*.json")]
    assert names and all(kraken.ws_classify(fixture_bytes(f"kraken/{n}").decode())[0] != "reconnect"
                         for n in names)


@pytest.mark.parametrize("text, code", [
    ("garbage", "bad_json"),
    ("", "bad_json"),
    ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":NaN,'
     '"qty":1,"ord_type":"limit","trade_id":1,"timestamp":"2023-10-06T17:35:55.440295Z"}]}', "bad_json"),
    ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.5,'
     '"qty":1,"ord_type":"limit","timestamp":"2023-10-06T17:35:55.440295Z"}]}', "bad_schema"),
    ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"b","price":1.5,'
     '"qty":1,"ord_type":"limit","trade_id":1,"timestamp":"2023-10-06T17:35:55.440295Z"}]}', "bad_schema"),
    ('{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":2.0,"qty":1}],'
     '"asks":[{"price":1.0,"qty":1}],"checksum":1}]}', "bad_schema"),   # crossed
    ('{"channel":"ticker","type":"snapshot","data":[]}', "bad_schema"),
    ('{"channel":"heartbeat"}', "bad_schema"),
])
def test_bad_frames_get_codes(text, code):
    with pytest.raises(CollectorError) as caught:
        kraken.parse_ws(text, RECEIVED)
    assert caught.value.code == code


def test_numbers_stay_exact_even_in_exponent_notation():
    text = ('{"channel":"trade","type":"update","data":[{"symbol":"DOGE/USD","side":"sell",'
            '"price":1.2e-1,"qty":5E-8,"ord_type":"market","trade_id":3,'
            '"timestamp":"2024-01-02T03:04:05.678Z"}]}')
    [trade] = kraken.parse_ws(text, RECEIVED)
    assert_valid(trade)
    assert (trade["price"], trade["amount"], trade["symbol"]) == ("0.12", "0.00000005", "DOGE/USD")
    # a frame decoded to floats (orjson) is refused rather than rounded
    with pytest.raises(CollectorError) as caught:
        kraken.parse_ws_doc(orjson.loads(fixture_bytes("kraken/ws_v2_trade_update_docs_derived.json")),
                            RECEIVED)
    assert caught.value.code == "bad_schema"


def test_subscriptions_and_channels():
    assert kraken.ws_subscribe_messages(["BTC/USD", "DOGE/USD"], ["trades", "order_book"]) == [
        '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","DOGE/USD"]}}',
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","DOGE/USD"],"depth":25}}']
    assert kraken.ws_channels(["BTC/USD"], ["trades", "order_book"]) == ["trade:BTC/USD", "book:BTC/USD"]
    assert kraken.ws_heartbeat_message() == '{"method":"ping"}'
    assert kraken.ws_url == "wss://ws.kraken.com/v2"


# ---- through the real HTTP path against the simulator -----------------------------------------

@pytest.mark.parametrize("kind, symbol, params", [
    ("order_book", "BTC/USD", {"limit": 20}), ("trades", "BTC/USDT", {}),
    ("ticker", "DOGE/USD", {}), ("candles", "ETH/BTC", {"timeframe": "1m", "limit": 10}),
    ("candles", "USDT/USD", {"timeframe": "1w"}),
])
def test_every_type_from_the_simulator_is_valid(fresh_sim, kind, symbol, params):
    result = fetch_records("kraken", kind, symbol, base_url=fresh_sim.url, attempts=1, **params)
    assert_valid(result)
    assert "err" not in (result if isinstance(result, dict) else {}), result
    records = result if isinstance(result, list) else [result]
    assert records and all(r["symbol"] == symbol and r["exchange"] == "kraken" for r in records)
    if kind == "order_book":
        assert len(result["bids"]) == len(result["asks"]) == 20
    if kind == "candles" and "limit" in params:
        assert len(result) == 10 and all(c["timeframe"] == "1m" for c in result)


def test_unsupported_timeframe_asks_nothing(fresh_sim):
    result = fetch_records("kraken", "candles", "BTC/USD", timeframe="2h", base_url=fresh_sim.url,
                           attempts=1)
    assert result["err"] == "unsupported" and fresh_sim.request_count() == 0


def test_unknown_pair_is_the_exchange_error_inside_http_200(fresh_sim):
    result = fetch_records("kraken", "ticker", "XRP/USD", base_url=fresh_sim.url, attempts=3)
    assert result["err"] == "exchange_error" and result["detail"] == "EQuery:Unknown asset pair"
    assert result["attempts"] == 1 and fresh_sim.request_count(TICKER) == 1   # an answer
    assert_valid(result)


@pytest.mark.parametrize("params, code, status", [
    ({"reason": "EQuery:Unknown asset pair"}, "exchange_error", None),
    ({"reason": "EGeneral:Invalid arguments", "status": 400}, "exchange_error", 400),
    ({"reason": "EAPI:Rate limit exceeded"}, "rate_limited", None),
    ({"reason": "EGeneral:Too many requests"}, "rate_limited", None),
])
def test_error_envelope_from_the_simulator(fresh_sim, params, code, status):
    fresh_sim.set_fault(DEPTH, "exchange_error", **params)
    result = fetch_records("kraken", "order_book", "BTC/USD", base_url=fresh_sim.url, attempts=1)
    assert result["err"] == code and result["detail"] == params["reason"]
    if status is not None:
        assert result["status"] == status
    assert_valid(result)


def test_429_is_rate_limited(fresh_sim):
    fresh_sim.set_fault(OHLC, "status", status=429, retry_after=1,
                        body='{"error":["EGeneral:Too many requests"]}',
                        content_type="application/json")
    result = fetch_records("kraken", "candles", "BTC/USD", timeframe="1h", base_url=fresh_sim.url,
                           attempts=1)
    assert result["err"] == "rate_limited" and result["status"] == 429
    assert_valid(result)


@pytest.mark.parametrize("path, fault, code", [
    (DEPTH, "nan_json", "bad_json"), (DEPTH, "broken_json", "bad_json"),
    (DEPTH, "wrong_shape", "bad_schema"), (DEPTH, "crossed", "bad_schema"),
    (DEPTH, "unsorted", "bad_schema"), (DEPTH, "bad_values", "bad_schema"),
    (DEPTH, "html", "content_type"), (DEPTH, "huge", "too_large"),
    (TRADES, "wrong_shape", "bad_schema"), (TRADES, "bad_values", "bad_schema"),
    (TRADES, "huge", "too_large"), (TICKER, "crossed", "bad_schema"),
    (TICKER, "bad_values", "bad_schema"), (TICKER, "wrong_shape", "bad_schema"),
    (OHLC, "bad_values", "bad_schema"), (OHLC, "nan_json", "bad_json"),
])
def test_faults_in_kraken_shapes_get_codes(fresh_sim, path, fault, code):
    kind = {DEPTH: "order_book", TRADES: "trades", TICKER: "ticker", OHLC: "candles"}[path]
    fresh_sim.set_fault(path, fault)
    result = fetch_records("kraken", kind, "BTC/USD", base_url=fresh_sim.url, attempts=1, timeout=5)
    assert result["err"] == code, result
    assert_valid(result)


# ---- the console streamer against the simulator's websocket -----------------------------------

def test_stream_prints_valid_trades_and_books(sim):
    done = subprocess.run(
        [sys.executable, "-m", "proj", "stream", "kraken", "BTC/USDT", "--types", "trades,order_book",
         "--seconds", "4", "--ws-url", sim.ws_url_for("kraken") + "/v2"],
        cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert_valid(records)
    assert {r["type"] for r in records} == {"trade", "order_book"}
    assert {r["symbol"] for r in records} == {"BTC/USDT"}
    assert b"unexpected frame" not in done.stderr and b"refused" not in done.stderr


def test_streamer_reconnects_when_kraken_closes_without_a_word(sim):
    """Kraken has no reconnect frame: a connection it ends is simply closed (the simulator's
    request_reconnect fault does that after its grace), and the streamer opens a new one."""
    from streamers.connection import Streamer
    frames = []
    streamer = Streamer("kraken", ["ETH/USD"], ["trades"], frames.extend,
                        ws_url=sim.ws_url_for("kraken"), batch_size=1)
    runner = threading.Thread(target=streamer.run, kwargs={"seconds": 20}, daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: frames)
        sim.set_ws_fault("request_reconnect", exchange="kraken", grace=0.2)
        assert wait_for(lambda: streamer.stats.connections >= 2)
        seen = len(frames)
        assert wait_for(lambda: len(frames) > seen)   # data again, on the new connection
    finally:
        streamer.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert streamer.stats.reconnect_requests == 0 and streamer.stats.errors == 0
    records = [r for _, text in frames for r in kraken.parse_ws(text, RECEIVED)]
    assert_valid(records)
    assert records and {r["symbol"] for r in records} == {"ETH/USD"}


def wait_for(condition, seconds=8.0):
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_absurd_exponents_are_bad_schema_not_a_crash():
    from proj.exchanges.kraken import exact_number
    for text in ("1e200000000", "1e-99999999999999999999"):
        with pytest.raises(CollectorError) as caught:
            exact_number(text)
        assert caught.value.code == "bad_schema"


def test_kraken_outage_inside_http_200_is_retried(fresh_sim):
    from proj.collect import fetch_records
    fresh_sim.set_fault("/0/public/Ticker", "exchange_error", reason="EService:Unavailable", times=1)
    result = fetch_records("kraken", "ticker", "BTC/USD", base_url=fresh_sim.url, attempts=2)
    assert result.get("type") == "ticker", result
    assert fresh_sim.request_count("/0/public/Ticker") == 2


# ---- the exact decoder: one reused json decoder, the same answers as json.loads ----------------

@pytest.mark.parametrize("text", ["", "   ", " \n\t", "\u3000", "\ufeff{}", "{", "[NaN]", "[Infinity]",
                                  "{} x", "[1.0]]", b"", b"  ", b"\xff", b"[NaN]"])
def test_exact_decoder_refuses_what_json_loads_refuses(text):
    from proj.exchanges.kraken import decode_exact_json
    with pytest.raises(CollectorError) as caught:
        decode_exact_json(text)
    assert caught.value.code == "bad_json"


def test_exact_decoder_keeps_number_text():
    from proj.exchanges.kraken import decode_exact_json
    text = '{"a": 105944.20, "b": 1, "c": 1.5e-05, "d": [0.00012460, -0.0], "e": "x"}'
    assert decode_exact_json(text) == json.loads(text, parse_float=str)
    assert decode_exact_json(text.encode()) == json.loads(text, parse_float=str)
    assert decode_exact_json(text)["a"] == "105944.20"


def test_ws_book_levels_in_exponent_notation_take_the_exact_path():
    frame = {"channel": "book", "type": "snapshot", "data": [{
        "symbol": "BTC/USD", "checksum": 1, "timestamp": "2023-10-06T17:35:55.440295Z",
        "bids": [{"price": "PRICE", "qty": 1.5e-05}, {"price": 105935.40, "qty": 2}],
        "asks": [{"price": 105944.30, "qty": 0.136}]}]}
    text = json.dumps(frame).replace('"PRICE"', "105944.20")
    [book] = kraken.parse_ws(text, RECEIVED)
    assert book["bids"] == [["105944.2", "0.000015"], ["105935.4", "2"]]
    assert book["asks"] == [["105944.3", "0.136"]]
