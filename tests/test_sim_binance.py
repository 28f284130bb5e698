"""Binance through the real paths: REST fetches against the simulator (every data type, the
error envelope, 429/418 and the weight budget), the console streamer on the simulator's
combined streams, and the simulator's own websocket rules (pings, pong deadline, 24-hour cut
announced by serverShutdown, control frames)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import websocket

from proj.collect import fetch_records
from proj.exchanges import get_exchange
from proj.sim import Simulator
from proj.sim.binance import BinanceExchange
from proj.sim.binance_ws import BinanceWs
from proj.sim.server import SimServer

from .schema import assert_valid, fixture_bytes

ROOT = Path(__file__).resolve().parent.parent
DEPTH = "/api/v3/depth"
binance = get_exchange("binance")
TOO_MUCH = ('{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request '
            'weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling '
            'the API."}')


def fetch(sim, kind="order_book", symbol="BTC/USDT", **kwargs):
    kwargs.setdefault("attempts", 1)
    kwargs.setdefault("timeout", 3)
    return fetch_records("binance", kind, symbol, base_url=sim.url, **kwargs)


def binance_sim(**ws_rules) -> Simulator:
    """A simulator of Binance alone, for tests that fault it or change its connection rules."""
    return Simulator(port=0, exchanges=[BinanceExchange()], ws_exchanges=[BinanceWs(**ws_rules)])


@pytest.fixture
def own_sim():
    with binance_sim(ping_interval=0.2, pong_timeout=0.6) as simulator:
        yield simulator


@pytest.fixture
def short_lived_sim():
    """Connections live 2 s, announced by serverShutdown 1 s before they are cut."""
    with binance_sim(max_connection_age=2.0, shutdown_notice=1.0) as simulator:
        yield simulator


# ---- REST through the real HTTP path -------------------------------------------------------

@pytest.mark.parametrize("kind, symbol, params", [
    ("order_book", "BTC/USDT", {"limit": 20}), ("order_book", "ETH/BTC", {}),
    ("trades", "BTC/USDT", {"limit": 50}), ("trades", "NKN/USDT", {}),
    ("ticker", "BTC/USDT", {}), ("ticker", "BTC/FDUSD", {}),
    ("candles", "BTC/USDT", {"timeframe": "1m", "limit": 10}),
    ("candles", "ETH/USDT", {"timeframe": "1w", "limit": 5}),
])
def test_every_type_from_the_simulator_is_valid(fresh_sim, kind, symbol, params):
    result = fetch(fresh_sim, kind, symbol, **params)
    assert_valid(result)
    assert "err" not in (result if isinstance(result, dict) else {}), result
    records = result if isinstance(result, list) else [result]
    assert records and all(r["exchange"] == "binance" and r["symbol"] == symbol for r in records)
    if kind == "order_book":
        assert len(result["bids"]) == len(result["asks"]) == params.get("limit", 100)
        assert isinstance(result["nonce"], int)
    if kind == "trades":
        assert len(result) == params.get("limit", 500)
        assert [int(t["id"]) for t in result] == sorted(int(t["id"]) for t in result)
    if kind == "candles":
        assert len(result) == params["limit"]
        assert all(c["timeframe"] == params["timeframe"] and c["trades"] is not None for c in result)


@pytest.mark.parametrize("timeframe", ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                                       "12h", "1d", "1w"])
def test_every_timeframe(fresh_sim, timeframe):
    candles = fetch(fresh_sim, "candles", timeframe=timeframe, limit=3)
    assert_valid(candles)
    assert len(candles) == 3


def test_unknown_symbol_is_the_exchange_error_envelope(fresh_sim):
    result = fetch(fresh_sim, "ticker", "FOO/USDT")
    assert result["err"] == "exchange_error" and result["status"] == 400
    assert "Invalid symbol." in result["detail"] and "-1121" in result["detail"]
    assert_valid(result)


@pytest.mark.parametrize("params", [{}, {"status": 400}, {"reason": "Invalid symbol.",
                                                          "response_code": -1121, "status": 400}])
def test_exchange_error_fault_whatever_the_status(fresh_sim, params):
    fresh_sim.set_fault(DEPTH, "exchange_error", **params)
    result = fetch(fresh_sim)
    assert result["err"] == "exchange_error" and "Invalid symbol." in result["detail"]
    assert_valid(result)


def test_restricted_location_451_is_exchange_error(fresh_sim):
    body = fixture_bytes("binance/rest_error_451_restricted_location.json").decode()
    fresh_sim.set_fault(DEPTH, "status", status=451, body=body, content_type="application/json")
    result = fetch(fresh_sim)
    assert result["err"] == "exchange_error" and result["status"] == 451
    assert "restricted location" in result["detail"]


@pytest.mark.parametrize("status", [429, 418])
def test_429_and_418_are_rate_limited(fresh_sim, status):
    fresh_sim.set_fault(DEPTH, "status", status=status, retry_after=1, body=TOO_MUCH,
                        content_type="application/json")
    result = fetch(fresh_sim)
    assert result["err"] == "rate_limited" and result["status"] == status
    assert_valid(result)


def test_too_much_weight_envelope_in_http_200_is_rate_limited(fresh_sim):
    fresh_sim.set_fault(DEPTH, "status", status=200, body=TOO_MUCH, content_type="application/json")
    assert fetch(fresh_sim)["err"] == "rate_limited"


@pytest.mark.parametrize("path, fault, params, code", [
    (DEPTH, "nan_json", {}, "bad_json"),
    (DEPTH, "broken_json", {}, "bad_json"),
    (DEPTH, "wrong_shape", {}, "bad_schema"),
    (DEPTH, "crossed", {}, "bad_schema"),
    (DEPTH, "unsorted", {}, "bad_schema"),
    (DEPTH, "bad_values", {}, "bad_schema"),
    (DEPTH, "html", {}, "content_type"),
    (DEPTH, "status", {"status": 503}, "http_status"),
    (DEPTH, "huge", {}, "too_large"),
    ("/api/v3/trades", "huge", {"chunked": True}, "too_large"),
    ("/api/v3/trades", "nan_json", {}, "bad_json"),
    ("/api/v3/trades", "wrong_shape", {}, "bad_schema"),
    ("/api/v3/trades", "bad_values", {}, "bad_schema"),
    ("/api/v3/ticker/24hr", "nan_json", {}, "bad_json"),
    ("/api/v3/ticker/24hr", "wrong_shape", {}, "bad_schema"),
    ("/api/v3/ticker/24hr", "crossed", {}, "bad_schema"),
    ("/api/v3/ticker/24hr", "bad_values", {}, "bad_schema"),
    ("/api/v3/klines", "nan_json", {}, "bad_json"),
    ("/api/v3/klines", "wrong_shape", {}, "bad_schema"),
    ("/api/v3/klines", "bad_values", {}, "bad_schema"),
])
def test_faults_in_binance_shapes_become_error_codes(fresh_sim, path, fault, params, code):
    fresh_sim.set_fault(path, fault, **params)
    kind = {DEPTH: "order_book", "/api/v3/trades": "trades", "/api/v3/ticker/24hr": "ticker",
            "/api/v3/klines": "candles"}[path]
    result = fetch(fresh_sim, kind, timeframe="1m", limit=10)
    assert result["err"] == code, result
    assert_valid(result)


@pytest.mark.parametrize("path, kind", [("/api/v3/trades", "trades"), ("/api/v3/klines", "candles")])
def test_newest_first_lists_come_out_oldest_first(fresh_sim, path, kind):
    fresh_sim.set_fault(path, "unsorted")
    result = fetch(fresh_sim, kind, timeframe="1m", limit=10)
    assert_valid(result)
    key = (lambda r: int(r["id"])) if kind == "trades" else (lambda r: r["timestamp"])
    assert [key(r) for r in result] == sorted(key(r) for r in result)


def test_used_weight_header_on_every_answer(fresh_sim):
    ok = requests.get(fresh_sim.url + DEPTH, params={"symbol": "BTCUSDT", "limit": 1000}, timeout=5)
    bad = requests.get(fresh_sim.url + DEPTH, params={"symbol": "NOPE"}, timeout=5)
    for response in (ok, bad):
        headers = {k.lower(): v for k, v in response.headers.items()}
        assert binance.used_weight(headers) >= 1
        assert response.headers["Content-Type"].startswith("application/json")
    assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert int(bad.headers["X-MBX-USED-WEIGHT-1M"]) >= int(ok.headers["X-MBX-USED-WEIGHT-1M"])


def test_the_simulators_own_budget_gives_429_then_418(fresh_sim):
    frozen = time.time()   # one window throughout
    exchange = BinanceExchange(clock=lambda: frozen, weight_limit=12, window_seconds=2,
                               ban_after=2, ban_seconds=3)
    with SimServer(exchanges=[exchange]) as server:
        assert fetch(server)["type"] == "order_book"    # weight 5
        assert fetch(server)["type"] == "order_book"    # weight 10
        limited = fetch(server)                          # 15 > 12
        assert limited["err"] == "rate_limited" and limited["status"] == 429
        answers = [requests.get(server.url + DEPTH, params={"symbol": "BTCUSDT"}, timeout=5)
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 418, 418]   # kept asking: banned
    for answer in answers:
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.headers["X-MBX-USED-WEIGHT-1M"] == "10"
        assert answer.json()["code"] == -1003
    assert "IP banned until" in answers[-1].json()["msg"]


# ---- the websocket: the console streamer against the simulator -----------------------------

def test_console_streamer_prints_valid_trades_and_books(sim):
    done = subprocess.run(
        [sys.executable, "-m", "proj", "stream", "binance", "BTC/USDT", "--types",
         "trades,order_book", "--seconds", "4", "--ws-url", sim.ws_url_for("binance")],
        cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert records, done.stderr.decode()[-2000:]
    assert_valid(records)
    assert {r["type"] for r in records} == {"trade", "order_book"}
    assert {r["symbol"] for r in records} == {"BTC/USDT"}
    books = [r for r in records if r["type"] == "order_book"]
    assert all(len(b["bids"]) == len(b["asks"]) == 20 for b in books)
    assert [b["nonce"] for b in books] == sorted(b["nonce"] for b in books)


def test_streamer_reconnects_on_server_shutdown(short_lived_sim):
    from streamers.connection import Streamer
    frames = []
    streamer = Streamer("binance", ["ETH/USDT"], ["trades", "order_book"], frames.extend,
                        ws_url=short_lived_sim.ws_url_for("binance"), batch_size=1)
    streamer.run(seconds=3)   # connections live 2 s here, announced 1 s before the cut
    assert streamer.stats.reconnect_requests >= 1 and streamer.stats.connections >= 2
    assert streamer.stats.errors == 0, streamer.stats.last_error
    records = [r for _, text in frames for r in binance.parse_ws(text, int(time.time() * 1000))]
    assert_valid(records)
    assert {r["type"] for r in records} == {"trade", "order_book"}


def test_prices_agree_with_rest(fresh_sim):
    ws = websocket.create_connection(
        fresh_sim.ws_url_for("binance") + "?streams=btcusdt@depth20@100ms", timeout=5)
    try:
        [book] = binance.parse_ws(ws.recv(), int(time.time() * 1000))
    finally:
        ws.close()
    rest = fetch(fresh_sim, limit=5)
    assert abs(float(book["bids"][0][0]) / float(rest["bids"][0][0]) - 1) < 0.01


# ---- the simulator's websocket rules --------------------------------------------------------

def _frames(ws, until: float) -> list[str]:
    found = []
    ws.settimeout(0.2)
    while time.monotonic() < until:
        try:
            found.append(ws.recv())
        except websocket.WebSocketTimeoutException:
            pass
    return found


def test_control_frames_are_what_the_adapter_classifies(own_sim):
    ws = websocket.create_connection(own_sim.ws_url_for("binance"), timeout=5)
    try:
        sent = [{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1},
                {"method": "LIST_SUBSCRIPTIONS", "id": 2},
                {"method": "SET_PROPERTY", "params": ["combined", True], "id": 3},
                {"method": "GET_PROPERTY", "params": ["combined"], "id": 4},
                {"method": "GET_PROPERTY", "params": ["nope"], "id": 5},
                {"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 6},
                {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 7},
                {"method": "NOPE", "id": 8}, {"id": 9}, "not json"]
        for message in sent:
            ws.send(message if isinstance(message, str) else json.dumps(message))
        answers = [f for f in _frames(ws, time.monotonic() + 1.0) if '"stream"' not in f]
    finally:
        ws.close()
    docs = [json.loads(a) for a in answers]
    assert docs[:4] == [{"result": None, "id": 1}, {"result": ["btcusdt@trade"], "id": 2},
                        {"result": None, "id": 3}, {"result": True, "id": 4}]
    assert docs[4] == {"code": 0, "msg": "Unknown property", "id": 5}
    assert [d.get("code") for d in docs[7:]] == [2, 2, 3]
    assert [binance.ws_classify(a)[0] for a in answers] == \
        ["ack"] * 4 + ["error"] + ["ack"] * 2 + ["error"] * 3


def test_raw_streams_send_bare_payloads(own_sim):
    ws = websocket.create_connection(own_sim.ws_url + "/binance/ws/btcusdt@trade", timeout=5)
    try:
        payload = json.loads(ws.recv())
    finally:
        ws.close()
    assert payload["e"] == "trade" and payload["s"] == "BTCUSDT" and isinstance(payload["m"], bool)


def test_server_pings_and_answered_pongs_keep_the_connection(own_sim):
    ws = websocket.create_connection(own_sim.ws_url_for("binance") + "?streams=xrpusdt@trade",
                                     timeout=5)
    pings, ends = 0, time.monotonic() + 1.5   # well past the 0.6 s pong deadline
    try:
        ws.settimeout(0.2)
        while time.monotonic() < ends:
            try:
                opcode, _ = ws.recv_data_frame(True)   # websocket-client answers the pings
            except websocket.WebSocketTimeoutException:
                continue
            assert opcode != websocket.ABNF.OPCODE_CLOSE
            pings += opcode == websocket.ABNF.OPCODE_PING
    finally:
        ws.close()
    assert pings >= 3


def test_no_pong_within_the_deadline_closes_the_connection():
    ws_exchange = BinanceWs(trade_interval=None, ping_interval=0.2, pong_timeout=0.5)
    with Simulator(port=0, exchanges=[], ws_exchanges=[ws_exchange]) as simulator:
        ws = websocket.create_connection(simulator.ws_url_for("binance") + "?streams=btcusdt@trade",
                                         timeout=5)
        time.sleep(1.5)   # reading nothing, so answering no ping
        ws.settimeout(3)
        code = None
        try:
            while code is None:
                opcode, frame = ws.recv_data_frame(True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = struct.unpack("!H", frame.data[:2])[0]
        finally:
            ws.close()
    assert code == 1008


def test_connections_are_announced_then_cut_at_their_age(short_lived_sim):
    ws = websocket.create_connection(
        short_lived_sim.ws_url_for("binance") + "?streams=btcusdt@trade", timeout=5)
    started, shutdown_at, closed_at = time.monotonic(), None, None
    ws.settimeout(0.2)
    try:
        while closed_at is None and time.monotonic() - started < 5:
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                closed_at = time.monotonic() - started
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                text = frame.data.decode()
                if binance.ws_classify(text)[0] == "reconnect":
                    shutdown_at = time.monotonic() - started
                    assert json.loads(text)["event"]["e"] == "serverShutdown"
    finally:
        ws.close()
    assert shutdown_at is not None and closed_at is not None
    assert shutdown_at < closed_at   # announced, then cut (at 1 s and 2 s of age here)


def test_scripted_trades_and_the_request_reconnect_fault(own_sim):
    ws = websocket.create_connection(own_sim.ws_url_for("binance") + "?streams=ethbtc@trade",
                                     timeout=5)
    try:
        ids = own_sim.ws_script_trades("ethbtc", 5, exchange="binance")
        seen = []
        ends = time.monotonic() + 3
        ws.settimeout(0.2)
        while len(seen) < 5 and time.monotonic() < ends:
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            [trade] = binance.parse_ws(text, int(time.time() * 1000))
            if int(trade["id"]) in ids:
                seen.append(int(trade["id"]))
        assert seen == ids
        own_sim.set_ws_fault("request_reconnect", exchange="binance", grace=5)
        frames = _frames(ws, time.monotonic() + 0.5)
        assert any(binance.ws_classify(f)[0] == "reconnect" for f in frames)
    finally:
        ws.close()


def test_garbage_fault_frames_are_refused_by_the_parser(own_sim):
    ws = websocket.create_connection(own_sim.ws_url_for("binance") + "?streams=btcusdt@trade",
                                     timeout=5)
    try:
        ws.recv()
        own_sim.set_ws_fault("garbage", exchange="binance", count=4)
        ws.settimeout(0.5)
        codes, ends = set(), time.monotonic() + 3
        while len(codes) < 3 and time.monotonic() < ends:
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_BINARY:
                codes.add("binary")
                continue
            try:
                binance.parse_ws(data.decode(), int(time.time() * 1000))
            except Exception as error:   # CollectorError
                codes.add(error.code)
    finally:
        ws.close()
    assert codes == {"binary", "bad_json", "bad_schema"}


def test_lively_frames_reach_every_subscriber(sim):
    found: dict[str, set] = {}

    def listen(name):
        ws = websocket.create_connection(sim.ws_url_for("binance") + "?streams=solusdt@trade/"
                                         "solusdt@depth10@100ms", timeout=5)
        try:
            found[name] = {binance.ws_classify(f)[1] for f in _frames(ws, time.monotonic() + 1.5)}
        finally:
            ws.close()

    threads = [threading.Thread(target=listen, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert found["a"] == found["b"] == {"solusdt@trade", "solusdt@depth10@100ms"}
