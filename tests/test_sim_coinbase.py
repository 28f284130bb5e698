"""The simulator's Coinbase Advanced Trade side on its own: REST documents in the recorded shapes,
its rate limit, and the websocket's frames, sequence numbers, scripted trades and faults.

Checked with plain json against the recorded fixtures, never with the collector's parsers.
"""
from __future__ import annotations

import json
import re
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from proj.collect import fetch_records
from proj.sim import SimServer, Simulator
from proj.sim.coinbase import MAX_CANDLES, CoinbaseExchange
from proj.sim.coinbase_ws import CoinbaseWs

from .schema import fixture_bytes

API = "/api/v3/brokerage/market"
NUMBER = re.compile(r"(0|[1-9]\d*)(\.\d*[1-9])?")   # Coinbase writes no trailing zeros
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z")


def recorded(name: str):
    return json.loads(fixture_bytes(f"coinbase/{name}"))


@pytest.fixture
def cb():
    """Only Coinbase, lively but fast: a trade every 20 ms and a book change every 50 ms."""
    with Simulator(port=0, exchanges=[CoinbaseExchange()],
                   ws_exchanges=[CoinbaseWs(trade_interval=0.02, book_interval=0.05,
                                            heartbeat_interval=0.2, seed=3)]) as simulator:
        yield simulator


@pytest.fixture
def quiet():
    """No lively trades or book changes: only what the test asks for."""
    with Simulator(port=0, exchanges=[CoinbaseExchange()],
                   ws_exchanges=[CoinbaseWs(trade_interval=None, book_interval=None,
                                            heartbeat_interval=None)]) as simulator:
        yield simulator


def get(sim, path: str, **query) -> requests.Response:
    return requests.get(sim.url + API + path, params=query, timeout=5)


# ---- REST ------------------------------------------------------------------------------------

def test_product_book_in_the_recorded_shape(cb):
    answer = get(cb, "/product_book", product_id="BTC-USD", limit=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    doc, real = answer.json(), recorded("rest_at_product_book_btcusd.json")
    assert list(doc) == list(real) and list(doc["pricebook"]) == list(real["pricebook"])
    book = doc["pricebook"]
    assert len(book["bids"]) == len(book["asks"]) == 5 and TIME.fullmatch(book["time"])
    for level in book["bids"] + book["asks"]:
        assert list(level) == ["price", "size"] and NUMBER.fullmatch(level["price"])
    bids = [float(level["price"]) for level in book["bids"]]
    asks = [float(level["price"]) for level in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]


def test_market_trades_in_the_recorded_shape(cb):
    doc = get(cb, "/products/ETH-USD/ticker", limit=30).json()
    real = recorded("rest_at_market_trades_btcusd.json")
    assert list(doc) == list(real) and len(doc["trades"]) == 30
    assert all(list(t) == list(real["trades"][0]) for t in doc["trades"])
    times = [t["time"] for t in doc["trades"]]
    assert times == sorted(times, reverse=True)   # newest first
    assert all(TIME.fullmatch(t) for t in times)
    assert {t["side"] for t in doc["trades"]} <= {"BUY", "SELL"}
    assert all(t["product_id"] == "ETH-USD" and NUMBER.fullmatch(t["size"]) for t in doc["trades"])


def test_product_in_the_recorded_shape(cb):
    doc = get(cb, "/products/BTC-USD").json()
    newest = recorded("large/rest_at_market_products.json")["products"][0]
    assert list(doc) == list(newest)
    assert float(doc["low_24h"]) <= float(doc["price"]) <= float(doc["high_24h"])
    listed = get(cb, "/products", product_ids="BTC-USD,ETH-USD").json()
    assert [p["product_id"] for p in listed["products"]] == ["BTC-USD", "ETH-USD"]
    assert listed["num_products"] == 2


def test_candles_newest_first_within_the_window(cb):
    now = int(time.time())
    doc = get(cb, "/products/BTC-USD/candles", granularity="FIVE_MINUTE",
              start=now - 3600, end=now).json()
    real = recorded("rest_at_candles_btcusd.json")
    assert all(list(c) == list(real["candles"][0]) for c in doc["candles"])
    starts = [int(c["start"]) for c in doc["candles"]]
    assert starts == sorted(starts, reverse=True) and len(starts) in (12, 13)
    assert all(s % 300 == 0 and now - 3600 <= s <= now for s in starts)
    limited = get(cb, "/products/BTC-USD/candles", granularity="FIVE_MINUTE",
                  start=now - 3600, end=now, limit=3).json()
    assert [int(c["start"]) for c in limited["candles"]] == starts[:3]


@pytest.mark.parametrize("path, query, status, error", [
    ("/products/BTC-USD/candles", {"granularity": "ONE_MINUTE", "start": 0, "end": 60 * MAX_CANDLES},
     400, "INVALID_ARGUMENT"),
    ("/products/BTC-USD/candles", {"granularity": "FOUR_HOUR", "start": 0, "end": 60}, 400,
     "INVALID_ARGUMENT"),
    ("/products/BTC-USD/candles", {"granularity": "ONE_MINUTE"}, 400, "INVALID_ARGUMENT"),
    ("/products/BTC-USD/ticker", {}, 400, "INVALID_ARGUMENT"),      # limit is required
    ("/products/NOPE-USD/ticker", {"limit": 1}, 404, "NOT_FOUND"),
    ("/product_book", {}, 400, "INVALID_ARGUMENT"),
    ("/product_book", {"product_id": "NOPE-USD"}, 404, "NOT_FOUND"),
])
def test_errors_in_the_recorded_envelope(cb, path, query, status, error):
    answer = get(cb, path, **query)
    assert answer.status_code == status
    doc = answer.json()
    assert list(doc) == list(recorded("rest_at_error_404_invalid_product.json"))
    assert doc["error"] == error and doc["message"] == doc["error_details"]


def test_exchange_error_fault_is_the_envelope(cb):
    cb.set_fault(API + "/products/BTC-USD", "exchange_error", status=400, reason="bad")
    answer = get(cb, "/products/BTC-USD")
    assert answer.status_code == 400
    assert answer.json() == {"error": "INVALID_ARGUMENT", "error_details": "bad", "message": "bad"}


def test_the_simulators_own_rate_limit():
    with SimServer(exchanges=[CoinbaseExchange(rate_limit=(3, 60))]) as server:
        for _ in range(3):
            assert get(server, "/products/BTC-USD").status_code == 200
        refused = get(server, "/products/BTC-USD")
        assert refused.status_code == 429 and refused.headers["Content-Type"].startswith("text/html")
        result = fetch_records("coinbase", "ticker", "BTC/USD", base_url=server.url, attempts=1)
        assert result["err"] == "rate_limited" and result["status"] == 429


# ---- websocket -------------------------------------------------------------------------------

def open_ws(sim):
    return connect(sim.ws_url_for("coinbase"), open_timeout=3, close_timeout=1)


def subscribe(ws, channel: str, *products: str, kind: str = "subscribe") -> None:
    ws.send(json.dumps({"type": kind, "product_ids": list(products), "channel": channel}))


def frames(ws, seconds: float, until=None) -> list:
    """Frames (decoded) received within `seconds`, or until `until(frames)` holds."""
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until(got)):
        try:
            message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        got.append(message if isinstance(message, bytes) else json.loads(message))
    return got


def test_subscribe_ack_then_snapshot_then_updates_numbered_per_connection(cb):
    with open_ws(cb) as ws:
        subscribe(ws, "heartbeats")
        subscribe(ws, "market_trades", "BTC-USD")
        subscribe(ws, "level2", "BTC-USD")
        subscribe(ws, "ticker", "BTC-USD")
        got = frames(ws, 5, until=lambda fs: sum(f["channel"] == "heartbeats" for f in fs) >= 2
                     and sum(f["channel"] == "l2_data" for f in fs) >= 3)
    assert [f["sequence_num"] for f in got] == list(range(len(got)))   # across all channels
    channels = [f["channel"] for f in got]
    beating = [f for f in got if f["channel"] != "heartbeats"]   # heartbeats may come between
    assert [f["channel"] for f in beating[:3]] == ["subscriptions", "subscriptions", "market_trades"]
    assert beating[2]["events"][0]["type"] == "snapshot"
    first_book = channels.index("l2_data")
    assert got[first_book]["events"][0]["type"] == "snapshot"
    assert all(f["events"][0]["type"] == "update" for f in got[first_book + 1:]
               if f["channel"] in ("l2_data", "market_trades"))
    assert got[-1]["channel"] in ("heartbeats", "l2_data", "market_trades", "ticker")
    for f in got:
        assert list(f) == ["channel", "timestamp", "sequence_num", "events"]
    acks = [f["events"][0]["subscriptions"] for f in got if f["channel"] == "subscriptions"]
    assert acks[-1] == {"heartbeats": [], "market_trades": ["BTC-USD"], "level2": ["BTC-USD"],
                        "ticker": ["BTC-USD"]}
    beats = [f["events"][0] for f in got if f["channel"] == "heartbeats"]
    real = recorded("ws_at_heartbeats.json")["events"][0]
    assert list(beats[0]) == list(real)
    assert beats[1]["heartbeat_counter"] == beats[0]["heartbeat_counter"] + 1
    trades = [t for f in got if f["channel"] == "market_trades" for t in f["events"][0]["trades"]]
    recorded_trade = recorded("ws_at_market_trades_update.json")["events"][0]["trades"][0]
    assert trades and all(list(t) == list(recorded_trade) for t in trades)
    tickers = [t for f in got if f["channel"] == "ticker" for t in f["events"][0]["tickers"]]
    recorded_ticker = recorded("ws_at_ticker_update.json")["events"][0]["tickers"][0]
    assert tickers and all(list(t) == list(recorded_ticker) for t in tickers)
    levels = got[first_book]["events"][0]["updates"]
    assert list(levels[0]) == list(recorded("ws_at_l2_data_update_btcusd.json")["events"][0]["updates"][0])
    bids = [float(u["price_level"]) for u in levels if u["side"] == "bid"]
    offers = [float(u["price_level"]) for u in levels if u["side"] == "offer"]
    assert bids == sorted(bids, reverse=True) and offers == sorted(offers) and bids[0] < offers[0]


def test_trade_side_is_the_makers(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "level2", "ETH-USD")
        subscribe(ws, "market_trades", "ETH-USD")
        got = frames(ws, 3, until=lambda fs: len(fs) >= 4)
        levels = got[1]["events"][0]["updates"]
        best_bid = next(u["price_level"] for u in levels if u["side"] == "bid")
        best_ask = next(u["price_level"] for u in levels if u["side"] == "offer")
        quiet.ws_script_trades("ETH-USD", 20, interval=0.001, exchange="coinbase")
        got = frames(ws, 5, until=lambda fs: len(fs) >= 20)
    trades = [f["events"][0]["trades"][0] for f in got]
    assert len(trades) == 20
    for trade in trades:   # the book does not move here: every trade is at the touch
        assert trade["price"] == (best_ask if trade["side"] == "SELL" else best_bid)


def test_scripted_trades_arrive_exactly_once_in_order(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "market_trades", "BTC-USD")
        frames(ws, 2, until=lambda fs: len(fs) >= 2)   # ack and snapshot
        ids = quiet.ws_script_trades("BTC-USD", 30, interval=0.001, exchange="coinbase")
        got = frames(ws, 5, until=lambda fs: len(fs) >= 30)
    assert [int(f["events"][0]["trades"][0]["trade_id"]) for f in got] == ids
    assert [f["sequence_num"] for f in got] == list(range(2, 32))
    assert quiet.ws_script_done("BTC-USD", exchange="coinbase")


def test_unsubscribe_stops_the_channel(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "market_trades", "BTC-USD")
        frames(ws, 2, until=lambda fs: len(fs) >= 2)
        subscribe(ws, "market_trades", "BTC-USD", kind="unsubscribe")
        [ack] = frames(ws, 2, until=lambda fs: len(fs) >= 1)
        assert ack["events"] == [{"subscriptions": {}}]   # nothing left
        quiet.ws_exchange("coinbase").trade_interval = 0.01
        quiet.ws_exchange("coinbase").wake()
        assert frames(ws, 0.5) == []


@pytest.mark.parametrize("message", [
    "not json", "[1]", '{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}',
    '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"matches"}',
    '{"type":"subscribe","product_ids":["NOPE-USD"],"channel":"market_trades"}',
    '{"type":"subscribe","channel":"market_trades"}',
    '{"type":"hello","product_ids":["BTC-USD"],"channel":"market_trades"}',
])
def test_what_it_does_not_understand_is_an_error_frame(quiet, message):
    with open_ws(quiet) as ws:
        ws.send(message)
        [answer] = frames(ws, 2, until=lambda fs: len(fs) >= 1)
    assert list(answer) == ["type", "message"] and answer["type"] == "error"


def test_garbage_fault(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "market_trades", "BTC-USD")
        frames(ws, 2, until=lambda fs: len(fs) >= 2)
        quiet.set_ws_fault("garbage", exchange="coinbase", count=4)
        raw = []
        deadline = time.monotonic() + 3
        while len(raw) < 4 and time.monotonic() < deadline:
            raw.append(ws.recv(timeout=2))
    assert isinstance(raw[1], bytes)
    with pytest.raises(ValueError):
        json.loads(raw[0])                                   # cut short
    assert json.loads(raw[2])["channel"] == "sim_unknown_channel"
    broken = json.loads(raw[3])["events"][0]["trades"][0]
    assert "price" not in broken and broken["product_id"] == "BTC-USD"


def test_drop_and_reconnect_faults_end_the_connection(quiet):
    for kind, params in (("drop", {}), ("request_reconnect", {"grace": 0.2})):
        with open_ws(quiet) as ws:
            subscribe(ws, "market_trades", "BTC-USD")
            frames(ws, 2, until=lambda fs: len(fs) >= 2)
            quiet.set_ws_fault(kind, exchange="coinbase", **params)
            with pytest.raises((ConnectionClosed, TimeoutError)):
                while True:
                    message = ws.recv(timeout=8)
                    assert not isinstance(message, bytes)
                    assert json.loads(message)["channel"] != "reconnect"   # Coinbase has none


def test_refused_handshake(quiet):
    quiet.set_ws_fault("refuse", exchange="coinbase", seconds=1, status=503)
    with pytest.raises(InvalidStatus):
        open_ws(quiet)
    quiet.clear_ws_faults("coinbase")
    with open_ws(quiet) as ws:
        subscribe(ws, "heartbeats")
        assert frames(ws, 2, until=lambda fs: len(fs) >= 1)[0]["channel"] == "subscriptions"
