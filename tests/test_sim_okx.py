"""The simulator's OKX: REST details, the books checksum, scripted trades, garbage, the 30 s
idle rule and the documented rate limits."""
import json
import time
from decimal import Decimal

import pytest
import requests
import websocket

from proj.exchanges import get_exchange
from proj.records import CollectorError
from proj.sim import SimServer, Simulator
from proj.sim.okx import BARS, OkxExchange
from proj.sim.okx_ws import IDLE_CLOSE_CODE, OkxWs, checksum

from .schema import FIXTURES, assert_valid, fixture_bytes

okx = get_exchange("okx")


def get(sim, path, **query):
    response = requests.get(sim.url + "/api/v5/market/" + path, params=query, timeout=5)
    return response.status_code, response.json()


# ---- REST ---------------------------------------------------------------------------------

def test_books_depth_and_level_shape(fresh_sim):
    status, doc = get(fresh_sim, "books", instId="BTC-USDT")
    assert status == 200 and doc["code"] == "0" and doc["msg"] == ""
    [book] = doc["data"]
    assert len(book["bids"]) == len(book["asks"]) == 1          # sz defaults to 1
    assert len(book["asks"][0]) == 4 and book["asks"][0][2] == "0"
    _, doc = get(fresh_sim, "books", instId="BTC-USDT", sz=400)
    assert len(doc["data"][0]["bids"]) == 400


def test_trades_newest_first_and_capped(fresh_sim):
    _, doc = get(fresh_sim, "trades", instId="ETH-USDT", limit=1000)
    trades = doc["data"]
    assert len(trades) == 500
    times = [int(t["ts"]) for t in trades]
    assert times == sorted(times, reverse=True)
    assert {t["side"] for t in trades} == {"buy", "sell"}


@pytest.mark.parametrize("bar, opening", [("1D", 16 * 3600), ("1Dutc", 0), ("6H", 4 * 3600),
                                          ("1H", 0), ("1W", 4 * 86400 - 8 * 3600)])
def test_candles_newest_first_opening_in_the_right_time_zone(fresh_sim, bar, opening):
    step = BARS[bar][0]
    _, doc = get(fresh_sim, "candles", instId="BTC-USDT", bar=bar, limit=3)
    rows = doc["data"]
    assert len(rows) == 3 and all(len(row) == 9 for row in rows)
    starts = [int(row[0]) // 1000 for row in rows]
    assert starts == sorted(starts, reverse=True)
    assert all(start % step == opening % step for start in starts)
    assert [row[8] for row in rows] == ["0", "1", "1"]   # only the newest is still running


def test_candles_after_pages_back(fresh_sim):
    _, newest = get(fresh_sim, "candles", instId="BTC-USDT", bar="1m", limit=2)
    _, older = get(fresh_sim, "candles", instId="BTC-USDT", bar="1m", limit=2,
                   after=newest["data"][-1][0])
    assert int(older["data"][0][0]) == int(newest["data"][-1][0]) - 60_000


@pytest.mark.parametrize("path, query, status, code", [
    ("ticker", {"instId": "NOPE-USDT"}, 200, "51001"),
    ("books", {}, 400, "50014"),
    ("candles", {"instId": "BTC-USDT", "bar": "7m"}, 400, "51000"),
    ("books", {"instId": "BTC-USDT", "sz": "x"}, 400, "51000"),
])
def test_errors_keep_the_envelope(fresh_sim, path, query, status, code):
    got_status, doc = get(fresh_sim, path, **query)
    assert (got_status, doc["code"], doc["data"]) == (status, code, [])
    assert doc["msg"]


def test_rest_documents_parse_into_valid_records(fresh_sim):
    received = int(time.time() * 1000)
    for path, kind, query in [("books", "order_book", {"sz": 50}), ("trades", "trades", {}),
                              ("ticker", "ticker", {}), ("candles", "candles", {"bar": "15m"})]:
        response = requests.get(fresh_sim.url + "/api/v5/market/" + path,
                                params={"instId": "XRP-USDT", **query}, timeout=5)
        assert_valid(okx.parse_rest(kind, response.content, "XRP/USDT", received, timeframe="15m"))


def test_documented_rate_limits_when_enforced():
    with SimServer(exchanges=[OkxExchange(enforce_rate_limits=True)]) as server:
        url = server.url + "/api/v5/market/ticker?instId=BTC-USDT"
        statuses = [requests.get(url, timeout=5).status_code for _ in range(20)]
        assert statuses == [200] * 20        # 20 requests per 2 s on the ticker
        refused = requests.get(url, timeout=5)
        assert refused.status_code == 429
        assert refused.json() == json.loads(fixture_bytes("okx/rest_error_429_too_many_requests.json"))
        # other endpoints have budgets of their own
        assert requests.get(server.url + "/api/v5/market/books?instId=BTC-USDT",
                            timeout=5).status_code == 200


# ---- websocket ----------------------------------------------------------------------------

def connect(url, *args):
    ws = websocket.create_connection(url, timeout=5)
    if args:
        ws.send(json.dumps({"op": "subscribe",
                            "args": [{"channel": c, "instId": i} for c, i in args]}))
    return ws


def recv_json(ws, seconds=5.0):
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        text = ws.recv()
        if text != "pong":
            return json.loads(text)
    raise AssertionError("nothing but pongs")


def test_simulator_checksum_is_okx_s():
    """The checksum function reproduces every checksum of a recorded OKX books sequence."""
    book = {}
    lines = (FIXTURES / "okx/sequences/ws_btcusdt_books.jsonl").read_text().splitlines()
    for line in lines:
        frame = json.loads(line)
        data = frame["data"][0]
        if frame["action"] == "snapshot":
            book = {side: {level[0]: level for level in data[side]} for side in ("bids", "asks")}
        else:
            _apply(book, data)
        assert checksum(*_sorted(book)) == data["checksum"]


def _apply(book, data):
    for side in ("bids", "asks"):
        for level in data[side]:
            if Decimal(level[1]) == 0:
                book[side].pop(level[0], None)
            else:
                book[side][level[0]] = level


def _sorted(book):
    return (sorted(book["bids"].values(), key=lambda level: -Decimal(level[0])),
            sorted(book["asks"].values(), key=lambda level: Decimal(level[0])))


def test_books_channel_snapshot_then_updates_that_add_up(sim):
    ws = connect(sim.ws_url_for("okx"), ("books", "ETH-USDT"))
    try:
        assert recv_json(ws)["event"] == "subscribe"
        first = recv_json(ws)
        assert first["action"] == "snapshot" and first["data"][0]["prevSeqId"] == -1
        book = {side: {level[0]: level for level in first["data"][0][side]} for side in ("bids", "asks")}
        assert len(book["bids"]) == 400
        seq = first["data"][0]["seqId"]
        for _ in range(5):
            update = recv_json(ws)
            data = update["data"][0]
            assert update["action"] == "update" and data["prevSeqId"] == seq
            _apply(book, data)
            assert checksum(*_sorted(book)) == data["checksum"]
            seq = data["seqId"]
    finally:
        ws.close()


def test_books5_and_trades_are_valid_records(sim):
    ws = connect(sim.ws_url_for("okx"), ("books5", "SOL-USDT"), ("trades", "SOL-USDT"))
    try:
        seen = set()
        ends = time.monotonic() + 5
        while seen != {"trade", "order_book"} and time.monotonic() < ends:
            text = ws.recv()
            what, channel = okx.ws_classify(text)
            if what == "data":
                records = okx.parse_ws(text, int(time.time() * 1000))
                assert_valid(records)
                seen |= {r["type"] for r in records}
                assert channel in ("books5:SOL-USDT", "trades:SOL-USDT")
        assert seen == {"trade", "order_book"}
    finally:
        ws.close()


def test_scripted_trades_arrive_once_in_order(sim):
    ws = connect(sim.ws_url_for("okx"), ("trades", "LTC-USDT"))
    try:
        assert recv_json(ws)["event"] == "subscribe"
        ids = sim.ws_script_trades("LTC-USDT", 10, interval=0.01, exchange="okx")
        got = []
        ends = time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < ends:
            frame = recv_json(ws)
            got += [int(t["tradeId"]) for t in frame["data"] if int(t["tradeId"]) in ids]
        assert got == ids
    finally:
        ws.close()


def test_garbage_frames_are_refused_not_fatal(sim):
    ws = connect(sim.ws_url_for("okx"), ("trades", "BTC-USDT"))
    try:
        assert recv_json(ws)["event"] == "subscribe"
        sim.ws_exchange("okx").trade_interval = None   # only the garbage
        sim.set_ws_fault("garbage", exchange="okx", count=4)
        outcomes = []
        ends = time.monotonic() + 5
        while len(outcomes) < 4 and time.monotonic() < ends:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                outcomes.append("binary")
                continue
            text = data.decode()
            what, _ = okx.ws_classify(text)
            if what != "data":
                outcomes.append(what)
                continue
            with pytest.raises(CollectorError) as caught:
                okx.parse_ws(text, int(time.time() * 1000))
            outcomes.append(caught.value.code)
        assert sorted(outcomes) == ["bad_json", "bad_schema", "binary", "unknown"]
    finally:
        sim.ws_exchange("okx").trade_interval = 0.2
        sim.clear_ws_faults("okx")
        ws.close()


def test_illegal_requests_and_unsubscribe(sim):
    ws = connect(sim.ws_url_for("okx"))
    try:
        ws.send('{"op":"subscribe","args":"trades"}')
        error = recv_json(ws)
        assert error["event"] == "error" and error["code"] == "60012"
        ws.send('{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}')
        assert recv_json(ws)["event"] == "subscribe"
        ws.send('{"op":"unsubscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}')
        while True:   # trades sent before the unsubscription may still come first
            frame = recv_json(ws)
            if "event" in frame:
                break
        assert frame == {"event": "unsubscribe", "arg": {"channel": "trades", "instId": "BTC-USDT"},
                         "connId": frame["connId"]}
    finally:
        ws.close()


def test_quiet_connections_are_closed_and_pings_keep_them_open():
    with Simulator(exchanges=[], ws_exchanges=[OkxWs(idle_timeout=1.0)]) as server:
        quiet = connect(server.ws_url_for("okx"))
        pinging = connect(server.ws_url_for("okx"))
        try:
            ends = time.monotonic() + 2.5
            while time.monotonic() < ends:
                pinging.send("ping")
                assert pinging.recv() == "pong"
                time.sleep(0.3)
            quiet.settimeout(3)
            opcode, data = quiet.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert int.from_bytes(data[:2], "big") == IDLE_CLOSE_CODE
        finally:
            quiet.close()
            pinging.close()


def test_both_paths_reach_the_okx_websocket(sim):
    assert sim.ws_url_for("okx").endswith("/okx/ws/v5/public")
    for url in (sim.ws_url_for("okx"), sim.ws_url + "/okx"):
        ws = connect(url)
        try:
            ws.send("ping")
            assert ws.recv() == "pong"
        finally:
            ws.close()
