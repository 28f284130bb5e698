"""The exchange simulator on its own: Bitstamp's shapes, every fault kind, the control APIs.

Checked with plain requests + json only, never with the collector's parsers: the simulator is
the independent reference those parsers are tested against.
"""
from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import requests

from proj.sim import FAULT_KINDS, Simulator, parse_fault_spec
from proj.sim.bitstamp import OHLC_STEPS, BitstampExchange

ROOT = Path(__file__).resolve().parent.parent
BOOK = "/api/v2/order_book/btcusd/"
TICKER = "/api/v2/ticker/btcusd/"
MIB = 1024 * 1024
REQUIRED_PAIRS = {"btcusd", "btceur", "ethusd", "ethbtc", "btcusdt", "ethusdt", "usdtusd", "xrpusd",
                  "ltcusd"}
TICKER_KEYS = ["timestamp", "open", "high", "low", "last", "volume", "vwap", "bid", "ask", "side",
               "open_24", "percent_change_24"]   # as in Bitstamp's recorded ticker, in order
PAIR_INFO_KEYS = {"trading", "base_decimals", "url_symbol", "name", "instant_and_market_orders",
                  "minimum_order", "counter_decimals", "description"}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _sim_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sim-")}


@pytest.fixture
def simulator():
    before = _sim_threads()
    with Simulator(port=0) as sim:
        yield sim
    leaked = {t for t in _sim_threads() - before if t.is_alive()}
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def frozen(clock):
    """A simulator whose Bitstamp clock only moves when the test moves it."""
    with Simulator(port=0, exchanges=[BitstampExchange(clock=clock)]) as sim:
        yield sim


def get(sim: Simulator, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return requests.get(sim.url + path, **kwargs)


def get_json(sim: Simulator, path: str):
    response = get(sim, path)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    return json.loads(response.content)


def decimals_of(text: str) -> int:
    assert re.fullmatch(r"\d+(\.\d+)?", text), text
    return len(text.partition(".")[2])


# ---------------------------------------------------------------------------------------------
# Shapes

@pytest.mark.parametrize("pair, price_decimals, amount_decimals", [
    ("btcusd", 2, 8), ("ethusd", 2, 8), ("ethbtc", 8, 8), ("usdtusd", 5, 5), ("xrpusd", 5, 8),
])
def test_order_book_shape_and_ordering(simulator, pair, price_decimals, amount_decimals):
    book = get_json(simulator, f"/api/v2/order_book/{pair}/")
    assert list(book) == ["timestamp", "microtimestamp", "bids", "asks"]
    assert abs(int(book["timestamp"]) - time.time()) < 60
    assert int(book["microtimestamp"]) // 1_000_000 == int(book["timestamp"])
    assert len(book["bids"]) == len(book["asks"]) == 100
    for price, amount in book["bids"] + book["asks"]:
        assert decimals_of(price) == price_decimals and decimals_of(amount) == amount_decimals
        assert Decimal(price) > 0 and Decimal(amount) > 0
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert all(a > b for a, b in zip(bids, bids[1:])), "bids strictly descending"
    assert all(a < b for a, b in zip(asks, asks[1:])), "asks strictly ascending"
    assert bids[0] < asks[0]


def test_trailing_slash_is_optional(simulator):
    assert get(simulator, "/api/v2/order_book/btcusd").status_code == 200
    assert get(simulator, "/api/v2/ticker/ethusd").status_code == 200
    assert get(simulator, "/api/v2/trading-pairs-info").status_code == 200


def test_transactions_shape_newest_first(simulator):
    minute = get_json(simulator, "/api/v2/transactions/btcusd/?time=minute")
    hour = get_json(simulator, "/api/v2/transactions/btcusd/?time=hour")
    assert len(hour) > 100   # ~12 trades a minute
    for trade in hour:
        assert set(trade) == {"date", "tid", "amount", "price", "type"}
        assert all(isinstance(value, str) for value in trade.values())
        assert trade["type"] in ("0", "1")
        assert decimals_of(trade["price"]) == 2 and decimals_of(trade["amount"]) == 8
        assert time.time() - 3700 < int(trade["date"]) <= time.time() + 1
    tids = [int(t["tid"]) for t in hour]
    dates = [int(t["date"]) for t in hour]
    assert all(a > b for a, b in zip(tids, tids[1:])), "newest first, tids increase over time"
    assert all(a >= b for a, b in zip(dates, dates[1:]))
    assert {t["tid"] for t in minute} <= {t["tid"] for t in hour}
    assert all(time.time() - 70 < int(t["date"]) for t in minute)


def test_transactions_default_window_and_bad_window(simulator):
    assert get(simulator, "/api/v2/transactions/ethusd/").status_code == 200
    response = get(simulator, "/api/v2/transactions/ethusd/?time=week")
    assert response.status_code == 400 and response.json()["status"] == "error"


def test_last_trade_is_near_the_book(simulator):
    book = get_json(simulator, BOOK)
    trades = get_json(simulator, "/api/v2/transactions/btcusd/?time=hour")
    mid = (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2
    assert abs(Decimal(trades[0]["price"]) / mid - 1) < Decimal("0.01")


def test_new_trades_appear_as_time_passes_and_history_stays(frozen, clock):
    before = get_json(frozen, "/api/v2/transactions/btcusd/?time=hour")
    clock.now += 600
    after = get_json(frozen, "/api/v2/transactions/btcusd/?time=hour")
    assert int(after[0]["tid"]) > int(before[0]["tid"])
    newer = [t for t in after if int(t["tid"]) > int(before[0]["tid"])]
    assert newer and all(int(t["date"]) > int(before[0]["date"]) for t in newer)
    # trades still inside the window are the very same trades
    still_there = {t["tid"]: t for t in before if int(t["date"]) > clock.now - 3600 + 1}
    by_tid = {t["tid"]: t for t in after}
    assert still_there and all(by_tid[tid] == trade for tid, trade in still_there.items())


def test_book_moves_with_time(frozen, clock):
    first = get_json(frozen, BOOK)
    assert get_json(frozen, BOOK)["bids"] == first["bids"]   # same second, same book
    clock.now += 3600
    assert get_json(frozen, BOOK)["bids"] != first["bids"]


def test_ticker_shape(simulator):
    ticker = get_json(simulator, TICKER)
    assert list(ticker) == TICKER_KEYS
    assert all(isinstance(value, str) for value in ticker.values())
    assert ticker["side"] in ("0", "1")
    assert re.fullmatch(r"-?\d+\.\d{2}", ticker["percent_change_24"])
    numbers = {k: Decimal(v) for k, v in ticker.items() if k not in ("timestamp", "side")}
    assert numbers["low"] <= numbers["last"] <= numbers["high"]
    assert numbers["low"] <= numbers["open"] <= numbers["high"]
    assert numbers["bid"] < numbers["ask"]
    assert numbers["volume"] > 0 and numbers["low"] <= numbers["vwap"] <= numbers["high"]
    expected = (numbers["last"] - numbers["open_24"]) / numbers["open_24"] * 100
    assert abs(Decimal(ticker["percent_change_24"]) - expected) <= Decimal("0.01")


def test_ticker_agrees_with_book_and_trades(frozen):
    ticker = get_json(frozen, TICKER)
    book = get_json(frozen, BOOK)
    trades = get_json(frozen, "/api/v2/transactions/btcusd/?time=hour")
    assert ticker["bid"] == book["bids"][0][0] and ticker["ask"] == book["asks"][0][0]
    assert ticker["last"] == trades[0]["price"] and ticker["side"] == trades[0]["type"]
    assert ticker["timestamp"] == book["timestamp"]


def test_ohlc_shape_and_continuity(simulator):
    document = get_json(simulator, "/api/v2/ohlc/btcusd/?step=3600&limit=24")
    assert list(document) == ["data"] and document["data"]["pair"] == "BTC/USD"
    candles = document["data"]["ohlc"]
    assert len(candles) == 24
    for candle in candles:
        assert list(candle) == ["timestamp", "open", "high", "low", "close", "volume"]
        assert all(isinstance(value, str) for value in candle.values())
        low, high = Decimal(candle["low"]), Decimal(candle["high"])
        assert low <= Decimal(candle["open"]) <= high and low <= Decimal(candle["close"]) <= high
        assert Decimal(candle["volume"]) >= 0
    stamps = [int(c["timestamp"]) for c in candles]
    assert all(t % 3600 == 0 for t in stamps)
    assert all(b - a == 3600 for a, b in zip(stamps, stamps[1:])), "oldest first, no gaps"
    assert abs(stamps[-1] - math.floor(time.time() / 3600) * 3600) <= 3600   # the running one
    assert all(a["close"] == b["open"] for a, b in zip(candles, candles[1:]))


@pytest.mark.parametrize("step", OHLC_STEPS)
def test_ohlc_every_valid_step(simulator, step):
    candles = get_json(simulator, f"/api/v2/ohlc/ethbtc/?step={step}&limit=5")["data"]["ohlc"]
    assert len(candles) == 5 and all(int(c["timestamp"]) % step == 0 for c in candles)
    assert all(decimals_of(c["open"]) == 8 for c in candles)


def test_ohlc_history_is_stable_and_limit_1000_works(simulator):
    path = "/api/v2/ohlc/btcusd/?step=60&limit=1000"
    first, second = (get_json(simulator, path)["data"]["ohlc"] for _ in range(2))
    assert len(first) == 1000
    overlap = {c["timestamp"]: c for c in first[:-1]}
    assert all(overlap[c["timestamp"]] == c for c in second if c["timestamp"] in overlap)


def test_ohlc_end_and_exclude_current(frozen, clock):
    step = 900
    current = math.floor(clock.now / step) * step
    candles = get_json(frozen, f"/api/v2/ohlc/btcusd/?step={step}&limit=3&end={current - 2 * step}")
    assert [int(c["timestamp"]) for c in candles["data"]["ohlc"]][-1] == current - 2 * step
    candles = get_json(frozen,
                       f"/api/v2/ohlc/btcusd/?step={step}&limit=3&exclude_current_candle=true")
    assert int(candles["data"]["ohlc"][-1]["timestamp"]) == current - step


@pytest.mark.parametrize("query", ["step=61&limit=5", "step=60&limit=0", "step=60&limit=1001",
                                   "limit=5", "step=abc&limit=5"])
def test_ohlc_bad_parameters_are_400(simulator, query):
    response = get(simulator, f"/api/v2/ohlc/btcusd/?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "error" and response.json()["reason"]


def test_trading_pairs_info_matches_what_is_served(simulator):
    pairs = get_json(simulator, "/api/v2/trading-pairs-info/")
    assert isinstance(pairs, list) and REQUIRED_PAIRS <= {p["url_symbol"] for p in pairs}
    for pair in pairs:
        assert set(pair) == PAIR_INFO_KEYS
        assert pair["name"].lower().replace("/", "") == pair["url_symbol"]
        book = get_json(simulator, f"/api/v2/order_book/{pair['url_symbol']}/")
        price, amount = book["bids"][0]
        assert decimals_of(price) == pair["counter_decimals"]
        assert decimals_of(amount) == pair["base_decimals"]


@pytest.mark.parametrize("path", [
    "/api/v2/order_book/nope/", "/api/v2/transactions/nope/", "/api/v2/ticker/nope/",
    "/api/v2/ohlc/nope/?step=60&limit=1", "/api/v2/ticker/BTCUSD/", "/api/v2/nothing/",
    "/somewhere/else",
])
def test_unknown_pairs_and_paths_are_404(simulator, path):
    assert get(simulator, path).status_code == 404


# ---------------------------------------------------------------------------------------------
# Faults

def test_hang_times_out_and_does_not_block_others(simulator):
    simulator.set_fault(BOOK, "hang", seconds=60)
    with pytest.raises(requests.ReadTimeout):
        get(simulator, BOOK, timeout=(2, 0.5))
    # that handler is still hanging; everything else is served meanwhile
    assert get(simulator, TICKER, timeout=2).status_code == 200


def test_stop_ends_hung_connections_promptly():
    outcome = []
    simulator = Simulator(port=0).start()
    simulator.set_fault(BOOK, "hang", seconds=60)

    def hung_client():
        try:
            get(simulator, BOOK, timeout=30)
            outcome.append("answered")
        except requests.RequestException as error:
            outcome.append(error)

    client = threading.Thread(target=hung_client)
    client.start()
    deadline = time.monotonic() + 5
    while simulator.request_count(BOOK) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    simulator.stop()
    client.join(10)
    assert not client.is_alive() and isinstance(outcome[0], requests.ConnectionError)
    assert time.monotonic() - started < 10   # generous: "promptly", not 60 s


def test_slow_body_drips_then_breaks_off(simulator):
    simulator.set_fault(BOOK, "slow_body", interval=0.05, seconds=0.5, content_length=100_000)
    with get(simulator, BOOK, stream=True) as response:   # headers arrive at once
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Content-Length"] == "100000"
        assert response.raw.read(8) == b'{"timest'         # the real body, a few bytes at a time
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(simulator, BOOK)                              # far less than promised, then closed


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_status(simulator, status):
    simulator.set_fault(BOOK, "status", status=status)
    response = get(simulator, BOOK)
    assert response.status_code == status and str(status) in response.text
    assert len(response.content) < 1000 and "Retry-After" not in response.headers


def test_status_rate_limits_with_retry_after(simulator):
    simulator.set_fault(BOOK, "status", status=429, retry_after=3, times=1)
    simulator.set_fault(BOOK, "status", status=418, times=1)
    limited = get(simulator, BOOK)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    banned = get(simulator, BOOK)
    assert banned.status_code == 418 and "Retry-After" not in banned.headers


def test_status_with_own_body(simulator):
    simulator.set_fault(BOOK, "status", status=500, body='{"error": "boom"}',
                        content_type="application/json")
    response = get(simulator, BOOK)
    assert response.status_code == 500 and response.json() == {"error": "boom"}
    assert response.headers["Content-Type"] == "application/json"


def test_html(simulator):
    simulator.set_fault(BOOK, "html")
    response = get(simulator, BOOK)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html")
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_broken_json(simulator):
    simulator.set_fault(BOOK, "broken_json")
    response = get(simulator, BOOK)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.text.startswith('{"timestamp": "')
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_nan_json(simulator):
    simulator.set_fault(BOOK, "nan_json")
    response = get(simulator, BOOK)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert math.isnan(json.loads(response.content)["bids"][0][0])   # lenient parsers take it
    with pytest.raises(orjson.JSONDecodeError):                      # strict JSON does not
        orjson.loads(response.content)


def test_empty(simulator):
    simulator.set_fault(BOOK, "empty")
    response = get(simulator, BOOK)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.content == b"" and response.headers["Content-Length"] == "0"


@pytest.mark.parametrize("path, wrong", [
    (BOOK, lambda d: isinstance(d["bids"][0], dict)),
    ("/api/v2/transactions/btcusd/", lambda d: isinstance(d, dict)),
    (TICKER, lambda d: isinstance(d, list)),
    ("/api/v2/ohlc/btcusd/?step=60&limit=5", lambda d: isinstance(d["data"]["ohlc"][0], list)),
    ("/api/v2/trading-pairs-info/", lambda d: isinstance(d, dict)),
    ("/not/served", lambda d: d == {"foo": 1}),
])
def test_wrong_shape(simulator, path, wrong):
    simulator.set_fault("*", "wrong_shape")
    assert wrong(get_json(simulator, path))


def test_exchange_error(simulator):
    simulator.set_fault(BOOK, "exchange_error", times=1)
    simulator.set_fault(BOOK, "exchange_error", status=400, reason="Price is too low",
                        response_code="400.021", times=1)
    assert get_json(simulator, BOOK) == {"status": "error", "reason": "Invalid pair",
                                         "response_code": "400.002"}
    response = get(simulator, BOOK)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "reason": "Price is too low",
                               "response_code": "400.021"}


def test_huge_with_content_length(simulator):
    simulator.set_fault(BOOK, "huge")
    response = get(simulator, BOOK, timeout=30)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) == 20 * MIB
    book = orjson.loads(response.content)   # still a valid (strict) JSON book, just enormous
    asks = [float(price) for price, _ in book["asks"][:1000] + book["asks"][-1000:]]
    assert len(book["asks"]) > 100_000 and asks == sorted(asks)


def test_huge_chunked_has_no_length_and_must_be_capped(simulator):
    simulator.set_fault(BOOK, "huge", chunked=True)
    with get(simulator, BOOK, stream=True, timeout=30) as response:
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        received = 0
        for chunk in response.iter_content(256 * 1024):
            received += len(chunk)
            if received > 16 * MIB:
                break   # what a capped client does
    assert received > 16 * MIB


def test_huge_transactions_is_one_long_valid_list(simulator):
    simulator.set_fault("/api/v2/transactions/btcusd/", "huge", size=2 * MIB)
    trades = get_json(simulator, "/api/v2/transactions/btcusd/")
    tids = [int(t["tid"]) for t in trades]
    assert len(trades) > 10_000 and all(a > b for a, b in zip(tids, tids[1:]))


def test_reset(simulator):
    simulator.set_fault(BOOK, "reset")
    with pytest.raises(requests.ConnectionError):
        get(simulator, BOOK)


def test_crossed(simulator):
    simulator.set_fault(BOOK, "crossed")
    simulator.set_fault(TICKER, "crossed")
    book = get_json(simulator, BOOK)
    bids = [Decimal(p) for p, _ in book["bids"]]
    assert bids[0] >= Decimal(book["asks"][0][0])
    assert all(a > b for a, b in zip(bids, bids[1:])), "only crossed, still sorted"
    ticker = get_json(simulator, TICKER)
    assert Decimal(ticker["bid"]) > Decimal(ticker["ask"])


def test_unsorted(simulator):
    simulator.set_fault(BOOK, "unsorted")
    book = get_json(simulator, BOOK)
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert any(a < b for a, b in zip(bids, bids[1:]))
    assert all(a < b for a, b in zip(asks, asks[1:]))


def test_bad_values(simulator):
    simulator.set_fault(BOOK, "bad_values")
    book = get_json(simulator, BOOK)
    assert book["timestamp"] == "0"
    levels = book["bids"] + book["asks"]
    assert any(Decimal(amount) < 0 for _, amount in levels)
    assert any(Decimal(price) == 0 for price, _ in levels)


def test_delay_then_the_normal_answer(simulator):
    simulator.set_fault(BOOK, "delay", delay=0.3)
    started = time.monotonic()
    assert len(get_json(simulator, BOOK)["bids"]) == 100
    assert time.monotonic() - started >= 0.3


def test_times_then_normal(simulator):
    simulator.set_fault(BOOK, "status", status=503, times=1)
    assert get(simulator, BOOK).status_code == 503
    assert get(simulator, BOOK).status_code == 200
    assert simulator.list_faults() == []


def test_faults_on_one_path_apply_in_order(simulator):
    simulator.set_fault(BOOK, "status", status=503, times=2)
    simulator.set_fault(BOOK, "status", status=502, times=1)
    assert [get(simulator, BOOK).status_code for _ in range(4)] == [503, 503, 502, 200]


def test_fault_path_matching(simulator):
    simulator.set_fault("/api/v2/order_book/btcusd", "status", status=501)   # no slash
    simulator.set_fault("/api/v2/ticker/btc", "status", status=502)          # not a parent
    simulator.set_fault("/api/v2/", "status", status=503)                    # a parent
    simulator.set_fault("*", "status", status=504)
    assert get(simulator, BOOK).status_code == 501            # most specific wins
    assert get(simulator, "/api/v2/order_book/btcusd").status_code == 501
    assert get(simulator, TICKER).status_code == 503
    assert get(simulator, "/elsewhere").status_code == 504
    assert get(simulator, "/_sim/stats").status_code == 200   # control is never faulted


def test_every_kind_works_on_a_path_no_exchange_serves(simulator):
    quick = {"hang": {"seconds": 5}, "slow_body": {"interval": 0.05, "seconds": 0.2},
             "huge": {"size": MIB}, "delay": {"delay": 0.05}}
    for kind in FAULT_KINDS:
        simulator.set_fault("/nowhere", kind, times=1, **quick.get(kind, {}))
        try:
            response = get(simulator, "/nowhere", timeout=(2, 0.5))
        except requests.RequestException:
            assert kind in ("hang", "slow_body", "reset"), kind
            continue
        assert response.status_code != 500 or kind == "status", kind
    assert simulator.request_count("/nowhere") == len(FAULT_KINDS)


def test_clear_faults(simulator):
    simulator.set_fault(BOOK, "status", status=503)
    simulator.set_fault(TICKER, "status", status=503)
    assert simulator.clear_faults(BOOK.rstrip("/")) == 1
    assert get(simulator, BOOK).status_code == 200 and get(simulator, TICKER).status_code == 503
    simulator.clear_faults()
    assert get(simulator, TICKER).status_code == 200


@pytest.mark.parametrize("path, kind, params", [
    (BOOK, "explode", {}),
    (BOOK, "hang", {"retry_after": 1}),
    (BOOK, "status", {"times": 0}),
    ("api/v2/ticker", "status", {}),
])
def test_set_fault_rejects_mistakes(simulator, path, kind, params):
    with pytest.raises(ValueError):
        simulator.set_fault(path, kind, **params)


def test_request_counts(simulator):
    get(simulator, BOOK)
    get(simulator, "/api/v2/order_book/btcusd")
    get(simulator, TICKER + "?x=1")
    get(simulator, "/_sim/stats")   # control requests are not counted
    assert simulator.request_count(BOOK) == 2
    assert simulator.request_count("/api/v2/order_book/btcusd") == 2
    assert simulator.request_count(TICKER) == 1
    assert simulator.request_count() == 3
    simulator.reset_counts()
    assert simulator.request_count() == 0


# ---------------------------------------------------------------------------------------------
# Control from another process

def test_http_control_api(simulator):
    control = simulator.url + "/_sim/faults"
    created = requests.post(control, json={"path": BOOK, "kind": "status", "status": 502,
                                           "times": 1}, timeout=5)
    assert created.status_code == 200 and created.json()["fault"]["kind"] == "status"
    listed = requests.get(control, timeout=5).json()["faults"]
    assert [(f["path"], f["kind"], f["status"], f["times"]) for f in listed] == [
        (BOOK, "status", 502, 1)]
    assert get(simulator, BOOK).status_code == 502
    assert get(simulator, BOOK).status_code == 200

    requests.post(control, json={"path": "*", "kind": "empty"}, timeout=5)
    assert requests.delete(control, timeout=5).json() == {"cleared": 1}
    assert get(simulator, TICKER).status_code == 200

    stats = requests.get(simulator.url + "/_sim/stats", timeout=5).json()
    assert stats == {"requests": {BOOK.rstrip("/"): 2, TICKER.rstrip("/"): 1}}
    requests.delete(simulator.url + "/_sim/stats", timeout=5)
    assert simulator.request_count() == 0


@pytest.mark.parametrize("body", [{"path": BOOK, "kind": "explode"}, {"kind": "hang"},
                                  {"path": BOOK, "kind": "status", "nonsense": 1}, []])
def test_http_control_api_rejects_mistakes(simulator, body):
    response = requests.post(simulator.url + "/_sim/faults", json=body, timeout=5)
    assert response.status_code == 400 and response.json()["error"]
    assert simulator.list_faults() == []


def test_parse_fault_spec():
    assert parse_fault_spec("/api/v2/ticker/btcusd/=status:status=503,times=2,body=down") == {
        "path": "/api/v2/ticker/btcusd/", "kind": "status", "status": 503, "times": 2,
        "body": "down"}
    assert parse_fault_spec("*=huge:chunked=true,size=1.5") == {
        "path": "*", "kind": "huge", "chunked": True, "size": 1.5}
    assert parse_fault_spec("/x=reset") == {"path": "/x", "kind": "reset"}
    with pytest.raises(ValueError):
        parse_fault_spec("no-kind-here")


def test_main_serves_until_interrupted_and_logs_each_request():
    command = [sys.executable, "-c", "import sys; from proj.sim import main; sys.exit(main())",
               "--port", "0", "--fault", f"{BOOK}=status:status=503,times=1"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not (match := re.search(r"simulator listening on (http://127\.0\.0\.1:\d+)",
                                      seen[-1] if seen else "")):
            seen.append(process.stderr.readline())
            assert seen[-1], f"exited before listening: {seen}"
        url = match.group(1)
        assert requests.get(url + BOOK, timeout=5).status_code == 503
        assert requests.get(url + BOOK, timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"GET {BOOK} 503 fault=status" in rest and f"GET {BOOK} 200" in rest
