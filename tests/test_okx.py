"""OKX: parsers against real recorded payloads, the real HTTP path against the simulator, and
the websocket streamer against the simulator's OKX websocket."""
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import websocket

from proj.collect import fetch_records
from proj.exchanges import get_exchange
from proj.records import TIMEFRAMES, CollectorError

from .schema import FIXTURES, assert_valid, fixture_bytes

ROOT = Path(__file__).resolve().parent.parent
okx = get_exchange("okx")
RECEIVED = 1747094100000
BOOKS, TRADES, TICKER, CANDLES = (f"/api/v5/market/{name}"
                                  for name in ("books", "trades", "ticker", "candles"))


def okx_fixture(name: str) -> bytes:
    return fixture_bytes(f"okx/{name}")


def rest_ticker_body() -> bytes:
    """The REST ticker body: the recorded websocket ticker's data (the same field set as
    GET /api/v5/market/ticker's data[0]) inside the REST envelope."""
    frame = json.loads(okx_fixture("ws_tickers_btcusdt.json"))
    return json.dumps({"code": "0", "msg": "", "data": frame["data"]}).encode()


# ---- symbols, requests, limits ------------------------------------------------------------

def test_symbols_both_ways():
    assert okx.to_exchange_symbol("BTC/USDT") == "BTC-USDT"
    assert okx.from_exchange_symbol("BTC-USDT") == "BTC/USDT"
    assert okx.from_exchange_symbol("ETH-BTC") == "ETH/BTC"
    with pytest.raises(CollectorError) as caught:
        okx.from_exchange_symbol("BTC-USDT-SWAP")   # a derivative, not BASE/QUOTE
    assert caught.value.code == "bad_schema"


def test_rest_requests():
    assert okx.rest_request("order_book", "BTC/USDT") == (BOOKS, {"instId": "BTC-USDT", "sz": 400})
    assert okx.rest_request("order_book", "BTC/USDT", limit=5)[1]["sz"] == 5
    assert okx.rest_request("trades", "ETH/USDT", limit=50) == (TRADES, {"instId": "ETH-USDT", "limit": 50})
    assert okx.rest_request("trades", "ETH/USDT", limit=5000)[1]["limit"] == 500
    assert okx.rest_request("ticker", "BTC/USDT") == (TICKER, {"instId": "BTC-USDT"})
    assert okx.rest_request("candles", "BTC/USDT", "1h", 10) == (
        CANDLES, {"instId": "BTC-USDT", "bar": "1H", "limit": 10})
    assert okx.rest_request("candles", "BTC/USDT", "1d")[1]["bar"] == "1Dutc"   # UTC days


def test_every_timeframe_has_a_bar_and_others_are_unsupported():
    assert set(okx.timeframes) == set(TIMEFRAMES)
    with pytest.raises(CollectorError) as caught:
        okx.rest_request("candles", "BTC/USDT", "7m")
    assert caught.value.code == "unsupported"


def test_rate_limit_respects_every_endpoints_budget():
    weight, seconds = okx.rate_limit
    documented = {"order_book": 40, "candles": 40, "ticker": 20, "trades": 100}   # per 2 s
    for kind, per_two_seconds in documented.items():
        # requests of one kind alone, at full budget, stay within that endpoint's limit
        assert weight / okx.request_weight(kind) / seconds <= per_two_seconds / 2


# ---- REST bodies --------------------------------------------------------------------------

def test_books_docs_example():
    book = okx.parse_rest("order_book", okx_fixture("rest_books_docs_example.json"), "BTC/USDT",
                          RECEIVED)
    assert_valid(book)
    assert book == {"type": "order_book", "exchange": "okx", "symbol": "BTC/USDT",
                    "timestamp": 1704067200000, "received": RECEIVED, "nonce": None,
                    "bids": [["41006.7", "0.487921"], ["41006.6", "0.2397"], ["41006.5", "1.125"]],
                    "asks": [["41006.8", "0.60038921"], ["41006.9", "0.30178218"],
                             ["41007", "2.0584253"]]}
    limited = okx.parse_rest("order_book", okx_fixture("rest_books_docs_example.json"), "BTC/USDT",
                             RECEIVED, limit=1)
    assert limited["bids"] == [["41006.7", "0.487921"]] and len(limited["asks"]) == 1


def test_trades_oldest_first_with_taker_side():
    trades = okx.parse_rest("trades", okx_fixture("rest_trades_btcusdt.json"), "BTC/USDT", RECEIVED)
    assert_valid(trades)
    assert trades == [
        {"type": "trade", "exchange": "okx", "symbol": "BTC/USDT", "id": "734864332",
         "timestamp": 1747087161666, "received": RECEIVED, "side": "buy",
         "price": "102537.9", "amount": "0.0000125"},
        {"type": "trade", "exchange": "okx", "symbol": "BTC/USDT", "id": "734864333",
         "timestamp": 1747087163557, "received": RECEIVED, "side": "sell",
         "price": "102537.9", "amount": "0.00013669"}]
    assert [t["id"] for t in okx.parse_rest("trades", okx_fixture("rest_trades_btcusdt.json"),
                                            "BTC/USDT", RECEIVED, limit=1)] == ["734864333"]


def test_candles_oldest_first():
    candles = okx.parse_rest("candles", okx_fixture("rest_candles_btcusdt_1m.json"), "BTC/USDT",
                             RECEIVED, timeframe="1m")
    assert_valid(candles)
    assert [c["timestamp"] for c in candles] == [1747093980000, 1747094040000]
    assert candles[0] == {"type": "candle", "exchange": "okx", "symbol": "BTC/USDT",
                          "timeframe": "1m", "timestamp": 1747093980000, "received": RECEIVED,
                          "open": "102806", "high": "102820.5", "low": "102783.1",
                          "close": "102806.1", "volume": "7164.04", "trades": None}
    newest = okx.parse_rest("candles", okx_fixture("rest_candles_btcusdt_1m.json"), "BTC/USDT",
                            RECEIVED, timeframe="1m", limit=1)
    assert [c["timestamp"] for c in newest] == [1747094040000]


def test_ticker():
    ticker = okx.parse_rest("ticker", rest_ticker_body(), "BTC/USDT", RECEIVED)
    assert_valid(ticker)
    assert ticker == {"type": "ticker", "exchange": "okx", "symbol": "BTC/USDT",
                      "timestamp": 1652459224956, "received": RECEIVED,
                      "bid": "30228.6", "ask": "30228.7", "last": "30236", "open": "29700.4",
                      "high": "31073", "low": "28020.3", "volume": "17602.13085371",
                      "quote_volume": "525802090.62716611", "vwap": None}


@pytest.mark.parametrize("name, code, detail", [
    ("rest_error_401_invalid_access_key.json", "exchange_error", "Invalid OK-ACCESS-KEY (50111)"),
    ("rest_error_404_not_found.json", "exchange_error", "Not Found (404)"),   # numeric code
    ("rest_error_429_too_many_requests.json", "rate_limited", "Too Many Requests (50011)"),
])
def test_recorded_error_bodies(name, code, detail):
    doc = json.loads(okx_fixture(name))
    assert okx.error_reason(doc) == detail
    assert okx.is_rate_limit_error(doc) == (code == "rate_limited")
    with pytest.raises(CollectorError) as caught:
        okx.parse_rest("ticker", okx_fixture(name), "BTC/USDT", RECEIVED)
    assert caught.value.code == code and caught.value.detail == detail


def test_error_inside_http_200_and_success_is_no_error():
    body = b'{"code":"51001","data":[],"msg":"Instrument ID doesn\'t exist."}'
    with pytest.raises(CollectorError) as caught:
        okx.parse_rest("order_book", body, "BTC/USDT", RECEIVED)
    assert caught.value.code == "exchange_error" and "51001" in caught.value.detail
    for name in ("rest_books_docs_example.json", "rest_trades_btcusdt.json"):
        assert okx.error_reason(json.loads(okx_fixture(name))) is None


@pytest.mark.parametrize("kind, body", [
    ("order_book", b'{"code":"0","msg":"","data":[]}'),
    ("trades", b'{"code":"0","msg":"","data":{"foo":1}}'),
    ("ticker", b'{"code":"0","msg":"","data":[{"instId":"BTC-USDT"}]}'),
    ("candles", b'{"code":"0","msg":"","data":[["1747094040000","1","2"]]}'),
    ("candles", b'{"code":"0","msg":"","data":[["1747094040000","2","3","1","2","5","1","1","1"],'
                b'["1747094040000","2","3","1","2","5","1","1","1"]]}'),
    ("trades", b'{"code":"0","msg":"","data":[{"instId":"BTC-USDT","side":"b","sz":"1",'
               b'"px":"1","tradeId":"1","ts":"1747094040000"}]}'),
])
def test_wrong_shapes_are_bad_schema(kind, body):
    with pytest.raises(CollectorError) as caught:
        okx.parse_rest(kind, body, "BTC/USDT", RECEIVED, timeframe="1m")
    assert caught.value.code == "bad_schema"


# ---- websocket frames ---------------------------------------------------------------------

def test_trades_frame():
    text = okx_fixture("ws_trades_btcusdt.json").decode()
    assert okx.ws_classify(text) == ("data", "trades:BTC-USDT")
    [trade] = okx.parse_ws(text, RECEIVED)
    assert_valid(trade)
    assert trade == {"type": "trade", "exchange": "okx", "symbol": "BTC/USDT", "id": "338476307",
                     "timestamp": 1652459224818, "received": RECEIVED, "side": "buy",
                     "price": "30236", "amount": "0.0002"}


def test_books5_frame():
    """A books5 push as OKX documents it (data[0] with asks/bids/instId/ts/seqId), with the
    best five levels of the recorded BTC-USDT snapshot."""
    snapshot = json.loads(okx_fixture("ws_books_snapshot_btcusdt.json"))["data"][0]
    frame = json.dumps({"arg": {"channel": "books5", "instId": "BTC-USDT"}, "data": [{
        "asks": snapshot["asks"][:5], "bids": snapshot["bids"][:5], "instId": "BTC-USDT",
        "ts": snapshot["ts"], "seqId": 363996337}]}, separators=(",", ":"))
    assert okx.ws_classify(frame) == ("data", "books5:BTC-USDT")
    [book] = okx.parse_ws(frame, RECEIVED)
    assert_valid(book)
    assert book["nonce"] == 363996337 and book["timestamp"] == int(snapshot["ts"])
    assert book["asks"][0] == ["30243.5", "1.44679"] and len(book["bids"]) == 5


@pytest.mark.parametrize("name, nonce", [
    ("ws_books_snapshot_btcusdt.json", None),        # live, 400 levels, before seqId existed
    ("ws_books_snapshot_docs_example.json", 123456),
])
def test_full_book_snapshots_are_order_books(name, nonce):
    text = okx_fixture(name).decode()
    assert okx.ws_classify(text) == ("data", "books:BTC-USDT")
    [book] = okx.parse_ws(text, RECEIVED)
    assert_valid(book)
    assert book["nonce"] == nonce and book["symbol"] == "BTC/USDT"


@pytest.mark.parametrize("name", ["ws_books_update_btcusdt.json", "ws_books_update_docs_example.json"])
def test_incremental_book_updates_are_not_records(name):
    with pytest.raises(CollectorError) as caught:
        okx.parse_ws(okx_fixture(name).decode(), RECEIVED)
    assert caught.value.code == "unsupported"


def test_every_frame_of_the_recorded_books_sequence():
    lines = (FIXTURES / "okx/sequences/ws_btcusdt_books.jsonl").read_text().splitlines()
    snapshots = 0
    for line in lines:
        assert okx.ws_classify(line) == ("data", "books:BTC-USDT")
        if '"action":"snapshot"' in line:
            assert_valid(okx.parse_ws(line, RECEIVED))
            snapshots += 1
        else:
            with pytest.raises(CollectorError):
                okx.parse_ws(line, RECEIVED)
    assert snapshots == 1 and len(lines) > 1


@pytest.mark.parametrize("name, expected", [
    ("ws_subscribe_ack_books.json", ("ack", "books:BTC-USDT")),
    ("ws_error_60018_channel_doesnt_exist.json", ("error", "")),
])
def test_recorded_control_frames(name, expected):
    assert okx.ws_classify(okx_fixture(name).decode()) == expected


@pytest.mark.parametrize("text, what", [
    ("pong", "heartbeat"),   # the text answer to the text "ping", not JSON
    ('{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}', "ack"),
    ('{"event":"unsubscribe","arg":{"channel":"books5","instId":"BTC-USDT"},"connId":"a4d3ae55"}', "ack"),
    ('{"event":"error","code":"60012","msg":"Illegal request: ping2","connId":"a4d3ae55"}', "error"),
    ('{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service '
     'upgrade. Please reconnect.","connId":"a4d3ae55"}', "reconnect"),
    ('{"event":"channel-conn-count","channel":"trades","connCount":"2","connId":"a4d3ae55"}', "ack"),
    ("not json at all", "unknown"),
    ('{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}', "unknown"),
])
def test_documented_control_frames(text, what):
    assert okx.ws_classify(text)[0] == what


@pytest.mark.parametrize("text, code", [
    ("garbage", "bad_json"),
    ("pong", "bad_json"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1"}]}',
     "bad_schema"),
    (okx_fixture("ws_tickers_btcusdt.json").decode(), "bad_schema"),     # not a channel of ours
    (okx_fixture("ws_candle1D_docs_example.json").decode(), "bad_schema"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[]}', "bad_schema"),
])
def test_bad_frames_get_codes(text, code):
    with pytest.raises(CollectorError) as caught:
        okx.parse_ws(text, RECEIVED)
    assert caught.value.code == code


def test_subscriptions_and_keepalive():
    assert okx.ws_channels(["BTC/USDT", "ETH/USDT"], ["trades", "order_book"]) == [
        "trades:BTC-USDT", "trades:ETH-USDT", "books5:BTC-USDT", "books5:ETH-USDT"]
    [message] = okx.ws_subscribe_messages(["BTC/USDT"], ["trades", "order_book"])
    assert message == ('{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},'
                       '{"channel":"books5","instId":"BTC-USDT"}]}')
    recorded = json.loads(okx_fixture("ws_subscribe_request.json"))
    assert set(json.loads(message)) == set(recorded) and recorded["op"] == "subscribe"
    assert okx.ws_heartbeat_message() == "ping"
    assert 0 < okx.ws_heartbeat_interval < 30   # the server drops connections quiet for 30 s
    assert okx.ws_url == "wss://ws.okx.com:8443/ws/v5/public"


# ---- through the real HTTP path, against the simulator --------------------------------------

def fetch(sim, kind, symbol="BTC/USDT", **kwargs):
    kwargs.setdefault("attempts", 1)
    kwargs.setdefault("timeout", 2)
    return fetch_records("okx", kind, symbol, base_url=sim.url, **kwargs)


@pytest.mark.parametrize("kind, symbol, params", [
    ("order_book", "BTC/USDT", {}), ("order_book", "ETH/BTC", {"limit": 5}),
    ("trades", "BTC/USDT", {}), ("trades", "ETH/USDT", {"limit": 20}),
    ("ticker", "BTC/USDT", {}), ("ticker", "SOL/USDT", {}),
    ("candles", "BTC/USDT", {"timeframe": "1m", "limit": 10}),
    ("candles", "BTC/USDT", {"timeframe": "1d", "limit": 3}),
    ("candles", "ETH/USDT", {"timeframe": "1w", "limit": 2}),
])
def test_every_type_from_the_simulator_is_valid(fresh_sim, kind, symbol, params):
    result = fetch(fresh_sim, kind, symbol, **params)
    assert_valid(result)
    assert not (isinstance(result, dict) and "err" in result), result
    if kind == "order_book":
        assert len(result["bids"]) == params.get("limit", 400) == len(result["asks"])
    if kind == "trades":
        assert len(result) == params.get("limit", 500)
        assert [t["timestamp"] for t in result] == sorted(t["timestamp"] for t in result)
    if kind == "candles":
        assert len(result) == params["limit"]
        assert all(c["timeframe"] == params["timeframe"] for c in result)
        step = {"1m": 60_000, "1d": 86_400_000, "1w": 604_800_000}[params["timeframe"]]
        assert all(c["timestamp"] % step == (345_600_000 if step == 604_800_000 else 0)
                   for c in result)   # UTC openings (weeks on Mondays)


def test_unknown_instrument_is_the_exchange_error_inside_http_200(fresh_sim):
    result = fetch(fresh_sim, "ticker", "NOPE/USDT")
    assert_valid(result)
    assert result["err"] == "exchange_error" and "51001" in result["detail"]
    assert "status" not in result   # HTTP 200: not a status error


@pytest.mark.parametrize("status", [200, 400])
def test_exchange_error_fault(fresh_sim, status):
    fresh_sim.set_fault(BOOKS, "exchange_error", status=status, reason="Parameter sz error",
                        response_code="51000")
    result = fetch(fresh_sim, "order_book", attempts=3)
    assert_valid(result)
    assert result["err"] == "exchange_error" and result["attempts"] == 1
    assert result["detail"] == "Parameter sz error (51000)"
    assert fresh_sim.request_count(BOOKS) == 1   # an answer, not retried


def test_429_with_okx_body_is_rate_limited(fresh_sim):
    fresh_sim.set_fault(TRADES, "exchange_error", status=429, response_code="50011",
                        reason="Too Many Requests", times=1)
    result = fetch(fresh_sim, "trades")
    assert_valid(result)
    assert result["err"] == "rate_limited" and result["status"] == 429


def test_rate_limit_code_inside_http_200_is_rate_limited(fresh_sim):
    fresh_sim.set_fault(TICKER, "exchange_error", status=200, response_code="50011", times=1)
    result = fetch(fresh_sim, "ticker")
    assert_valid(result)
    assert result["err"] == "rate_limited" and "50011" in result["detail"]


def test_plain_429_is_rate_limited(fresh_sim):
    fresh_sim.set_fault(CANDLES, "status", status=429, retry_after=1, times=1)
    result = fetch(fresh_sim, "candles", timeframe="1h")
    assert result["err"] == "rate_limited" and result["status"] == 429


def test_unknown_path_404_body_with_numeric_code(fresh_sim):
    result = fetch_records("okx", "ticker", "BTC/USDT", base_url=fresh_sim.url + "/api/v5/old",
                           attempts=1, timeout=2)
    assert_valid(result)
    assert result["err"] == "exchange_error" and result["status"] == 404
    assert result["detail"] == "Not Found (404)"


@pytest.mark.parametrize("path, kind, fault, code", [
    (BOOKS, "order_book", "nan_json", "bad_json"),
    (TRADES, "trades", "nan_json", "bad_json"),
    (TICKER, "ticker", "nan_json", "bad_json"),
    (CANDLES, "candles", "nan_json", "bad_json"),
    (BOOKS, "order_book", "wrong_shape", "bad_schema"),
    (TRADES, "trades", "wrong_shape", "bad_schema"),
    (TICKER, "ticker", "wrong_shape", "bad_schema"),
    (CANDLES, "candles", "wrong_shape", "bad_schema"),
    (BOOKS, "order_book", "crossed", "bad_schema"),
    (TICKER, "ticker", "crossed", "bad_schema"),
    (BOOKS, "order_book", "unsorted", "bad_schema"),
    (BOOKS, "order_book", "bad_values", "bad_schema"),
    (TRADES, "trades", "bad_values", "bad_schema"),
    (TICKER, "ticker", "bad_values", "bad_schema"),
    (CANDLES, "candles", "bad_values", "bad_schema"),
    (BOOKS, "order_book", "broken_json", "bad_json"),
    (BOOKS, "order_book", "huge", "too_large"),
    (TRADES, "trades", "huge", "too_large"),
    (TICKER, "ticker", "html", "content_type"),
    (TICKER, "ticker", "status", "http_status"),
])
def test_fault_in_okx_shapes_becomes_error_code(fresh_sim, path, kind, fault, code):
    fresh_sim.set_fault(path, fault)
    result = fetch(fresh_sim, kind, timeframe="1m" if kind == "candles" else None)
    assert_valid(result)
    assert result["err"] == code, result


@pytest.mark.parametrize("path, kind", [(TRADES, "trades"), (CANDLES, "candles")])
def test_unsorted_lists_still_come_out_oldest_first(fresh_sim, path, kind):
    fresh_sim.set_fault(path, "unsorted")
    result = fetch(fresh_sim, kind, timeframe="1m" if kind == "candles" else None)
    assert_valid(result)
    assert len(result) > 1
    times = [r["timestamp"] for r in result]
    assert times == sorted(times)


# ---- the websocket, against the simulator -------------------------------------------------

def test_console_streamer_prints_valid_trades_and_books(sim):
    done = subprocess.run(
        [sys.executable, "-m", "proj", "stream", "okx", "BTC/USDT", "--types", "trades,order_book",
         "--seconds", "4", "--ws-url", sim.ws_url_for("okx")],
        cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert records, done.stderr.decode()[-2000:]
    assert_valid(records)
    assert {r["type"] for r in records} == {"trade", "order_book"}
    assert {r["symbol"] for r in records} == {"BTC/USDT"}
    books = [r for r in records if r["type"] == "order_book"]
    assert all(len(b["bids"]) == len(b["asks"]) == 5 and b["nonce"] is not None for b in books)
    nonces = [b["nonce"] for b in books]
    assert nonces == sorted(nonces)
    assert b"frame refused" not in done.stderr


def _connect(sim):
    ws = websocket.create_connection(sim.ws_url_for("okx"), timeout=5)
    ws.send(okx.ws_subscribe_messages(["ETH/USDT"], ["trades"])[0])
    assert okx.ws_classify(ws.recv()) == ("ack", "trades:ETH-USDT")
    return ws


def _wait_for(ws, wanted: str, seconds: float = 3.0) -> str | None:
    """The first frame that ws_classify calls `wanted`, or None when none came in time."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        ws.settimeout(max(0.05, ends - time.monotonic()))
        try:
            text = ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        if okx.ws_classify(text)[0] == wanted:
            return text
    return None


def test_ping_is_answered_with_pong_and_a_stall_stops_it(sim):
    ws = _connect(sim)
    try:
        ws.send(okx.ws_heartbeat_message())
        assert _wait_for(ws, "heartbeat") == "pong"
        sim.set_ws_fault("stall", exchange="okx", seconds=2.5, answer_pings=False)
        time.sleep(0.2)   # let the stall begin
        ws.send("ping")
        assert _wait_for(ws, "heartbeat", seconds=1.5) is None   # no pong (and no data) now
    finally:
        sim.clear_ws_faults("okx")
        ws.close()


def test_error_and_reconnect_frames_from_the_simulator(sim):
    ws = _connect(sim)
    try:
        ws.send('{"op":"subscribe","args":[{"channel":"books5","instId":"NOPE-USDT"}]}')
        error = _wait_for(ws, "error")
        assert error is not None and '"code":"60018"' in error
        sim.set_ws_fault("request_reconnect", exchange="okx", grace=5)
        notice = _wait_for(ws, "reconnect")
        assert notice is not None and '"code":"64008"' in notice
    finally:
        sim.clear_ws_faults("okx")
        ws.close()


def test_streamer_pings_and_counts_pongs_as_heartbeats(sim, monkeypatch):
    from streamers.connection import Streamer

    from proj.ingest import normalize_frames
    monkeypatch.setattr(okx, "ws_heartbeat_interval", 0.3)   # 20 s in real life
    frames = []
    streamer = Streamer("okx", ["BTC/USDT"], ["trades", "order_book"], frames.extend,
                        ws_url=sim.ws_url_for("okx"), batch_size=1)
    streamer.run(seconds=2)
    assert streamer.stats.last_heartbeat is not None          # pongs came back, seen as such
    assert streamer.stats.errors == 0 and streamer.stats.connections == 1
    records, errors = normalize_frames("okx", frames)
    assert records and not errors
    assert_valid(records)


def test_a_stalled_connection_falls_silent_and_is_replaced(sim):
    import threading

    from streamers.connection import Streamer
    frames = []
    streamer = Streamer("okx", ["ETH/USDT"], ["order_book"], frames.extend,
                        ws_url=sim.ws_url_for("okx"), max_silence=1.0, batch_size=1)
    runner = threading.Thread(target=streamer.run, kwargs={"seconds": 8}, daemon=True)
    runner.start()
    try:
        ends = time.monotonic() + 5
        while streamer.stats.messages_received == 0 and time.monotonic() < ends:
            time.sleep(0.05)
        sim.set_ws_fault("stall", exchange="okx", answer_pings=False)   # this connection only
        while streamer.stats.connections < 2 and time.monotonic() < ends + 3:
            time.sleep(0.05)
        received_before = streamer.stats.messages_received
        while streamer.stats.messages_received == received_before and time.monotonic() < ends + 5:
            time.sleep(0.05)
    finally:
        streamer.stop()
        runner.join(10)
        sim.clear_ws_faults("okx")
    assert streamer.stats.silences >= 1 and streamer.stats.connections >= 2
    assert streamer.stats.messages_received > received_before   # data again, on the new one
