"""The simulator's Kraken, REST and websocket v2, on its own: shapes as recorded and
documented, errors inside HTTP 200, its rate limit, lively and scripted frames, a book that
snapshot + updates rebuild with matching checksums, and the websocket faults in Kraken's shapes.

Checked with plain json (numbers kept as their text) and websocket clients, never with the
collector's parsers.
"""
from __future__ import annotations

import json
import re
import time
import zlib
from decimal import Decimal

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from proj.sim import Simulator, SimServer
from proj.sim.kraken import PAIRS, KrakenExchange
from proj.sim.kraken_ws import KrakenWs

from .schema import fixture_bytes

T0 = 1_762_820_000.25   # a fixed clock for the REST side: answers depend only on it
DECIMALS = {pair.wsname: pair.spec.counter_decimals for pair in PAIRS}
NUMBER_RE_OK = set("0123456789.")


def exact_json(text):
    return json.loads(text, parse_float=str)


@pytest.fixture(scope="module")
def rest():
    with SimServer(exchanges=[KrakenExchange(clock=lambda: T0)]) as server:
        yield server


def get(server, endpoint, **query):
    response = requests.get(f"{server.url}/0/public/{endpoint}", params=query, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    return exact_json(response.text)


# ---- REST ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("asked, key", [("XBTUSD", "XXBTZUSD"), ("XXBTZUSD", "XXBTZUSD"),
                                        ("XBTUSDT", "XBTUSDT"), ("USDTUSD", "USDTZUSD"),
                                        ("ETHXBT", "XETHXXBT"), ("XDGUSD", "XDGUSD")])
def test_answers_are_keyed_by_the_canonical_name(rest, asked, key):
    for endpoint in ("Depth", "Trades", "Ticker", "OHLC"):
        doc = get(rest, endpoint, pair=asked)
        assert doc["error"] == [] and [k for k in doc["result"] if k != "last"] == [key]


def test_shapes_match_the_recordings(rest):
    def types(value):
        return [type(v).__name__ for v in value]

    recorded = exact_json(fixture_bytes("kraken/rest_depth_xbtusdt.json"))["result"]["XBTUSDT"]
    depth = get(rest, "Depth", pair="XBTUSDT", count=5)["result"]["XBTUSDT"]
    assert list(depth) == list(recorded) and len(depth["bids"]) == len(depth["asks"]) == 5
    assert types(depth["bids"][0]) == types(recorded["bids"][0]) == ["str", "str", "int"]
    # one decimal (pair_decimals) padded to five, as recorded: "105944.30000"
    assert len(depth["bids"][0][0].split(".")[1]) == 5 and depth["bids"][0][0].endswith("0000")

    recorded = exact_json(fixture_bytes("kraken/rest_trades_xbtusdt.json"))["result"]
    trades = get(rest, "Trades", pair="XBTUSDT")["result"]
    assert list(trades) == list(recorded) == ["XBTUSDT", "last"]
    assert types(trades["XBTUSDT"][0]) == types(recorded["XBTUSDT"][0])   # the time: a JSON float
    assert len(trades["XBTUSDT"]) == 1000 and isinstance(trades["last"], str)

    recorded = exact_json(fixture_bytes("kraken/rest_ticker_xbtusdt.json"))["result"]["XBTUSDT"]
    ticker = get(rest, "Ticker", pair="XBTUSDT")["result"]["XBTUSDT"]
    assert list(ticker) == list(recorded)
    assert {k: types(v) for k, v in ticker.items() if k != "o"} == \
        {k: types(v) for k, v in recorded.items() if k != "o"}

    recorded = exact_json(fixture_bytes("kraken/rest_ohlc_xbtusdt_1m.json"))["result"]
    ohlc = get(rest, "OHLC", pair="XBTUSDT", interval=1)["result"]
    assert list(ohlc) == list(recorded) and types(ohlc["XBTUSDT"][0]) == types(recorded["XBTUSDT"][0])
    assert len(ohlc["XBTUSDT"]) == 720 and ohlc["last"] == ohlc["XBTUSDT"][-2][0]
    assert ohlc["XBTUSDT"][-1][0] <= T0 < ohlc["XBTUSDT"][-1][0] + 60   # the running candle last


def test_answers_agree_with_each_other(rest):
    depth = get(rest, "Depth", pair="XBTUSD")["result"]["XXBTZUSD"]
    deeper = get(rest, "Depth", pair="XBTUSD", count=500)["result"]["XXBTZUSD"]
    ticker = get(rest, "Ticker", pair="XBTUSD")["result"]["XXBTZUSD"]
    assert len(depth["bids"]) == 100 and len(deeper["asks"]) == 500
    assert deeper["bids"][:100] == depth["bids"] and deeper["asks"][:100] == depth["asks"]
    assert ticker["b"][0] == depth["bids"][0][0] and ticker["a"][0] == depth["asks"][0][0]
    bids = [Decimal(p) for p, _, _ in depth["bids"]]
    asks = [Decimal(p) for p, _, _ in depth["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    trades = get(rest, "Trades", pair="XBTUSD")["result"]
    times = [Decimal(row[2]) for row in trades["XXBTZUSD"]]
    assert times == sorted(times) and times[-1] <= Decimal(str(T0))
    assert ticker["c"][0] == trades["XXBTZUSD"][-1][0]   # the last price is the last trade's
    ids = [row[6] for row in trades["XXBTZUSD"]]
    assert len(set(ids)) == len(ids)


def test_count_and_since(rest):
    assert len(get(rest, "Trades", pair="XBTUSD", count=7)["result"]["XXBTZUSD"]) == 7
    every = get(rest, "Trades", pair="XBTUSD", count=50)["result"]
    later = get(rest, "Trades", pair="XBTUSD", since=every["XXBTZUSD"][24][2])["result"]["XXBTZUSD"]
    assert later == every["XXBTZUSD"][25:]
    cursor = every["XXBTZUSD"][39][2].replace(".", "").ljust(19, "0")   # nanoseconds
    assert get(rest, "Trades", pair="XBTUSD", since=cursor)["result"]["XXBTZUSD"] == \
        every["XXBTZUSD"][40:]
    ohlc = get(rest, "OHLC", pair="ETHUSD", interval=60)["result"]["XETHZUSD"]
    since = get(rest, "OHLC", pair="ETHUSD", interval=60, since=ohlc[-4][0])["result"]["XETHZUSD"]
    assert since == ohlc[-3:]


@pytest.mark.parametrize("endpoint, query, error", [
    ("Ticker", {"pair": "NOPEEUR"}, "EQuery:Unknown asset pair"),
    ("Depth", {}, "EGeneral:Invalid arguments:pair"),
    ("Depth", {"pair": "XBTUSD", "count": "501"}, "EGeneral:Invalid arguments:count"),
    ("OHLC", {"pair": "XBTUSD", "interval": "7"}, "EGeneral:Invalid arguments:interval"),
])
def test_errors_come_inside_http_200(rest, endpoint, query, error):
    assert get(rest, endpoint, **query) == {"error": [error]}   # no "result" at all
    if error == "EQuery:Unknown asset pair":
        assert fixture_bytes("kraken/rest_error_unknown_asset_pair.json").strip() == \
            json.dumps({"error": [error]}, separators=(",", ":")).encode()


def test_rate_limit_of_kraken_kind():
    with SimServer(exchanges=[KrakenExchange(rate_limit=(3, 60))]) as server:
        answers = [get(server, "Time") for _ in range(2)] + \
                  [get(server, "Ticker", pair="XBTUSD") for _ in range(3)]
    assert all(a["error"] == [] for a in answers[:3])
    assert answers[3] == answers[4] == exact_json(fixture_bytes("kraken/rest_error_too_many_requests.json"))


@pytest.mark.parametrize("endpoint", ["Depth", "Trades", "Ticker", "OHLC"])
def test_fault_bodies_are_in_kraken_shapes(endpoint):
    with SimServer(exchanges=[KrakenExchange(clock=lambda: T0)]) as server:
        path = f"/0/public/{endpoint}"
        server.set_fault(path, "exchange_error", reason="EService:Unavailable", times=1)
        assert get(server, endpoint, pair="XBTUSD") == {"error": ["EService:Unavailable"]}
        for kind in ("nan_json", "wrong_shape", "crossed", "unsorted", "bad_values"):
            server.set_fault(path, kind, times=1)
            response = requests.get(server.url + path, params={"pair": "XBTUSD"}, timeout=10)
            assert response.status_code == 200
            if kind == "nan_json":
                assert "NaN" in response.text and response.text.startswith('{"error": []')
                continue
            doc = exact_json(response.text)
            assert doc["error"] == [] and "XXBTZUSD" in doc["result"], (kind, response.text[:200])


# ---- websocket ----------------------------------------------------------------------------------

def make_sim(**options):
    options = {"trade_interval": 0.02, "book_interval": 0.05, "seed": 3, **options}
    return Simulator(port=0, ws_exchanges=[KrakenWs(**options)])


@pytest.fixture
def wsim():
    with make_sim() as simulator:
        yield simulator


@pytest.fixture
def quiet():
    with make_sim(trade_interval=None, book_interval=None) as simulator:
        yield simulator


def open_ws(sim, path="/kraken/v2"):
    ws = connect(sim.ws_url + path, open_timeout=3, close_timeout=1, legacy=True)
    status = exact_json(ws.recv(timeout=3))
    assert status["channel"] == "status" and status["type"] == "update"
    assert status["data"][0]["system"] == "online" and status["data"][0]["api_version"] == "v2"
    assert status["data"][0]["connection_id"] >= 2 ** 63   # beyond a double's exact integers
    return ws


def subscribe(ws, channel, symbols, **params):
    ws.send(json.dumps({"method": "subscribe", "params": {"channel": channel, "symbol": symbols,
                                                          **params}, "req_id": 9}))


def frames(ws, seconds, until=None):
    """Frames received for `seconds` (or until `until(frame)` is true), decoded exactly."""
    got, ends = [], time.monotonic() + seconds
    while time.monotonic() < ends:
        try:
            frame = exact_json(ws.recv(timeout=max(0.01, ends - time.monotonic())))
        except TimeoutError:
            break
        got.append(frame)
        if until and until(frame):
            break
    return got


def check_number(text, decimals):
    """Kraken's numbers: plain decimals with exactly the pair's decimals, never 1e-05."""
    assert set(text) <= NUMBER_RE_OK and len(text.split(".")[1]) == decimals, text


def test_subscribe_trades_ack_snapshot_updates(wsim):
    with open_ws(wsim) as ws:
        subscribe(ws, "trade", ["BTC/USD"])
        raw = [ws.recv(timeout=3) for _ in range(3)]   # ack, snapshot, the first update
    got = [exact_json(text) for text in raw]
    ack, snapshot, update = got
    for text in raw[1:]:   # prices and quantities are JSON numbers, not strings
        assert re.search(r'"price":\d', text) and re.search(r'"qty":\d', text)
        assert '"price":"' not in text and "e-" not in text
    recorded = exact_json(fixture_bytes("kraken/ws_v2_subscribe_response_docs_derived.json"))
    assert list(ack) == ["method", "req_id", "result", "success", "time_in", "time_out"]
    assert set(ack) == set(recorded)
    assert ack["result"] == {"channel": "trade", "snapshot": True, "symbol": "BTC/USD"}
    assert ack["success"] is True and ack["req_id"] == 9
    assert snapshot["channel"] == "trade" and snapshot["type"] == "snapshot"
    assert len(snapshot["data"]) == 50
    recorded = exact_json(fixture_bytes("kraken/ws_v2_trade_update_docs_derived.json"))
    assert update["channel"] == "trade" and list(update) == list(recorded)
    for trade in snapshot["data"] + update["data"]:
        assert list(trade) == list(recorded["data"][0])
        assert isinstance(trade["price"], str) and isinstance(trade["trade_id"], int)  # numbers
        check_number(trade["price"], 1)
        check_number(trade["qty"], 8)
        assert trade["side"] in ("buy", "sell") and trade["ord_type"] in ("limit", "market")
        assert trade["timestamp"].endswith("Z") and trade["symbol"] == "BTC/USD"
    ids = [t["trade_id"] for t in snapshot["data"] + update["data"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def kraken_checksum(bids, asks):
    def part(levels):
        return "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0")
                       for p, q in levels[:10])
    return zlib.crc32((part(asks) + part(bids)).encode())


def test_book_snapshot_and_updates_rebuild_the_book_with_matching_checksums(wsim):
    with open_ws(wsim) as ws:
        subscribe(ws, "book", ["ETH/BTC"], depth=10)
        got = frames(ws, 2.5)
    ack = got[0]
    assert ack["result"] == {"channel": "book", "depth": 10, "snapshot": True, "symbol": "ETH/BTC"}
    books = [f for f in got if f.get("channel") == "book"]
    assert books[0]["type"] == "snapshot" and len(books) > 10
    assert all(f["type"] == "update" for f in books[1:])
    bids, asks = {}, {}
    for frame in books:
        [data] = frame["data"]
        assert data["symbol"] == "ETH/BTC" and data["timestamp"].endswith("Z")
        for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
            for level in levels:
                check_number(level["price"], DECIMALS["ETH/BTC"])
                check_number(level["qty"], 8)
                if Decimal(level["qty"]) == 0:
                    side.pop(level["price"], None)
                else:
                    side[level["price"]] = level["qty"]
        # keep the subscribed depth, as Kraken tells clients to
        top_bids = sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:10]
        top_asks = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))[:10]
        bids, asks = dict(top_bids), dict(top_asks)
        assert len(top_bids) == len(top_asks) == 10
        assert Decimal(top_bids[0][0]) < Decimal(top_asks[0][0])
        assert data["checksum"] == kraken_checksum(top_bids, top_asks)


def test_ping_pong_heartbeat_and_errors(quiet):
    with open_ws(quiet) as ws:
        ws.send('{"method":"ping","req_id":42}')
        pong = exact_json(ws.recv(timeout=3))
        assert set(pong) == set(exact_json(fixture_bytes("kraken/ws_v2_pong_docs_derived.json")))
        assert pong["method"] == "pong" and pong["req_id"] == 42
        subscribe(ws, "trade", ["XBT/USD"])   # the v1 name: refused by v2
        refused = exact_json(ws.recv(timeout=3))
        assert refused["error"] == "Currency pair not supported XBT/USD"
        assert refused["success"] is False and refused["method"] == "subscribe"
        ws.send("not json")
        assert exact_json(ws.recv(timeout=3))["success"] is False
        subscribe(ws, "trade", ["BTC/EUR"], snapshot=False)
        assert exact_json(ws.recv(timeout=3))["success"] is True
        quiet_frames = frames(ws, 2.5)   # no trades at all: heartbeats, about once a second
        assert quiet_frames and all(f == {"channel": "heartbeat"} for f in quiet_frames)
        assert 1 <= len(quiet_frames) <= 4


def test_unsubscribe_stops_the_channel(wsim):
    with open_ws(wsim) as ws:
        subscribe(ws, "trade", ["BTC/USD"], snapshot=False)
        frames(ws, 0.5)
        ws.send(json.dumps({"method": "unsubscribe",
                            "params": {"channel": "trade", "symbol": ["BTC/USD"]}}))
        got = frames(ws, 0.5, until=lambda f: f.get("method") == "unsubscribe")
        assert got[-1]["success"] is True and got[-1]["result"]["symbol"] == "BTC/USD"
        assert all(f.get("channel") != "trade" for f in frames(ws, 0.5))


def test_scripted_trades_in_order(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "trade", ["SOL/USD"], snapshot=False)
        assert exact_json(ws.recv(timeout=3))["success"] is True
        ids = quiet.ws_script_trades("SOL/USD", 30, interval=0.001, exchange="kraken")
        got = frames(ws, 5, until=lambda f: f.get("data", [{}])[-1].get("trade_id") == ids[-1])
    sent = [t["trade_id"] for f in got if f.get("channel") == "trade" for t in f["data"]]
    assert sent == ids and quiet.ws_script_done("SOL/USD", exchange="kraken")


def test_garbage_and_request_reconnect_faults(wsim):
    with open_ws(wsim) as ws:
        subscribe(ws, "trade", ["BTC/USD"], snapshot=False)
        frames(ws, 0.3)
        wsim.set_ws_fault("garbage", exchange="kraken", count=4)
        raw = []
        ends = time.monotonic() + 2
        while time.monotonic() < ends and len(raw) < 60:
            raw.append(ws.recv(timeout=2))
        assert any(isinstance(r, bytes) for r in raw)
        assert any('"channel":"sim_unknown"' in r for r in raw if isinstance(r, str))
        broken = [r for r in raw if isinstance(r, str) and r.startswith('{"channel":"trade"')
                  and '"trade_id"' not in r]
        assert len(broken) == 2   # one cut short, one without its trade_id
        wsim.set_ws_fault("request_reconnect", exchange="kraken", grace=0.3)
        with pytest.raises(ConnectionClosed):
            while True:   # Kraken says nothing first: data, then the close
                frame = ws.recv(timeout=3)
                assert "reconnect" not in frame
    assert wsim.ws_connection_count("kraken") == 1


def test_url_with_or_without_v2(wsim):
    assert wsim.ws_url_for("kraken").endswith("/kraken")
    for path in ("/kraken", "/kraken/v2"):
        with open_ws(wsim, path) as ws:
            subscribe(ws, "trade", ["DOGE/USD"], snapshot=False)
            assert exact_json(ws.recv(timeout=3))["result"]["symbol"] == "DOGE/USD"
            trade = next(f for f in frames(ws, 3, until=lambda f: f.get("channel") == "trade")
                         if f.get("channel") == "trade")
            check_number(trade["data"][0]["price"], DECIMALS["DOGE/USD"])
