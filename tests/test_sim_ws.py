"""The simulator's websocket side on its own: Bitstamp's websocket v2 frames, lively data,
scripted trades and every websocket fault kind.

Checked with plain json and two independent client libraries (websockets' sync client, and
websocket-client where raw socket behaviour matters), never with the collector's parsers.
"""
from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import websocket   # websocket-client
from websockets.exceptions import (ConnectionClosed, ConnectionClosedError, InvalidHandshake,
                                   InvalidStatus)
from websockets.sync.client import ClientConnection, connect

from proj.sim import WS_FAULT_KINDS, Simulator
from proj.sim.bitstamp import PAIRS
from proj.sim.bitstamp_ws import BitstampWs

from .schema import FIXTURES as SHARED_FIXTURES

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = SHARED_FIXTURES / "bitstamp"
TRADE_KEYS = ["id", "timestamp", "amount", "amount_str", "price", "price_str", "type",
              "microtimestamp", "buy_order_id", "sell_order_id"]   # as recorded, in order
DECIMALS = {spec.url_symbol: (spec.counter_decimals, spec.base_decimals) for spec in PAIRS}


def _sim_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sim-")}


def _make_sim(**bitstamp_options):
    options = {"trade_interval": 0.02, "book_interval": 0.05, "seed": 7, **bitstamp_options}
    return Simulator(port=0, ws_exchanges=[BitstampWs(**options)])


@pytest.fixture
def sim():
    """Lively but fast: a trade every 20 ms and a book change every 50 ms per pair."""
    before = _sim_threads()
    with _make_sim() as simulator:
        yield simulator
    leaked = {t for t in _sim_threads() - before if t.is_alive()}
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def quiet():
    """No lively data at all: only what the test asks for."""
    before = _sim_threads()
    with _make_sim(trade_interval=None, book_interval=None) as simulator:
        yield simulator
    leaked = {t for t in _sim_threads() - before if t.is_alive()}
    assert not leaked, f"threads left running: {leaked}"


# ---------------------------------------------------------------------------------------------
# helpers

def open_ws(sim: Simulator, path: str = "/bitstamp", **kwargs) -> ClientConnection:
    kwargs.setdefault("open_timeout", 3)
    kwargs.setdefault("close_timeout", 1)
    return connect(sim.ws_url + path, legacy=True, **kwargs)


def send(ws, event: str, channel: str | None = None) -> None:
    message = {"event": event} if channel is None else {"event": event, "data": {"channel": channel}}
    ws.send(json.dumps(message))


def recv_json(ws: ClientConnection, timeout: float = 3.0):
    return json.loads(ws.recv(timeout=timeout))


def next_matching(ws: ClientConnection, predicate, timeout: float = 3.0):
    """The next frame the predicate accepts (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if predicate(frame):
            return frame


def subscribe(ws: ClientConnection, *channels: str) -> None:
    for channel in channels:
        send(ws, "bts:subscribe", channel)
        assert next_matching(ws, lambda f: f.get("event") == "bts:subscription_succeeded"
                             and f.get("channel") == channel) == {
            "event": "bts:subscription_succeeded", "channel": channel, "data": {}}


def wait_for(condition, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def check_trade(frame, pair: str) -> dict:
    assert frame["event"] == "trade" and frame["channel"] == f"live_trades_{pair}"
    assert list(frame) == ["data", "channel", "event"]
    trade = frame["data"]
    assert list(trade) == TRADE_KEYS
    price_decimals, amount_decimals = DECIMALS[pair]
    assert isinstance(trade["id"], int) and trade["id"] > 0
    assert re.fullmatch(rf"\d+\.\d{{{price_decimals}}}", trade["price_str"])
    assert re.fullmatch(rf"\d+\.\d{{{amount_decimals}}}", trade["amount_str"])
    assert isinstance(trade["price"], float) and trade["price"] == float(trade["price_str"]) > 0
    assert isinstance(trade["amount"], float) and trade["amount"] == float(trade["amount_str"]) > 0
    assert trade["type"] in (0, 1)
    assert re.fullmatch(r"\d{10}", trade["timestamp"])
    assert re.fullmatch(r"\d{16}", trade["microtimestamp"])
    assert trade["microtimestamp"][:10] == trade["timestamp"]
    assert abs(int(trade["timestamp"]) - time.time()) < 60
    assert isinstance(trade["buy_order_id"], int) and isinstance(trade["sell_order_id"], int)
    assert trade["buy_order_id"] != trade["sell_order_id"]
    # the taker is the newer order: the buyer for a buy (type 0), the seller for a sell
    taker, maker = ((trade["buy_order_id"], trade["sell_order_id"]) if trade["type"] == 0
                    else (trade["sell_order_id"], trade["buy_order_id"]))
    assert taker > maker
    return trade


def check_levels(levels, pair: str, descending: bool, full: bool = True) -> list[Decimal]:
    price_decimals, amount_decimals = DECIMALS[pair]
    if full:
        assert len(levels) == 100
    prices = []
    for level in levels:
        assert isinstance(level, list) and len(level) == 2
        price, amount = level
        assert re.fullmatch(rf"\d+\.\d{{{price_decimals}}}", price), price
        assert re.fullmatch(rf"\d+\.\d{{{amount_decimals}}}", amount), amount
        assert Decimal(price) > 0
        if full:
            assert Decimal(amount) > 0
        prices.append(Decimal(price))
    pairs_of_neighbours = list(zip(prices, prices[1:]))
    assert all(a > b if descending else a < b for a, b in pairs_of_neighbours), prices[:20]
    return prices


class Collector:
    """A simple client that keeps one channel subscribed, whatever happens: it reconnects and
    resubscribes when the connection is lost, when it falls silent (no frame for `silence`
    seconds although heartbeats go out every `heartbeat` seconds: a stall), and when the
    server sends bts:request_reconnect (new connection first; the old one is read until the
    server closes it)."""

    def __init__(self, url: str, channel: str, silence: float = 0.8, heartbeat: float = 0.15):
        self.url, self.channel = url, channel
        self.silence, self.heartbeat = silence, heartbeat
        self.events: queue.Queue = queue.Queue()
        self.connections: dict[int, dict] = {}
        self.trades: list[tuple[int, int]] = []      # (connection number, trade id)
        self.seen_events: list[str] = []
        self.opened = 0
        self.current: int | None = None

    def _open(self, deadline: float) -> None:
        while True:
            try:
                ws = connect(self.url, open_timeout=2, close_timeout=0.5, legacy=True)
                break
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                assert time.monotonic() < deadline, "could not reconnect"
                time.sleep(0.05)
        self.opened += 1
        number = self.opened
        ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": self.channel}}))
        now = time.monotonic()
        self.connections[number] = {"ws": ws, "last_rx": now, "last_hb": now}
        threading.Thread(target=self._read, args=(number, ws), daemon=True).start()
        self.current = number

    def _read(self, number: int, ws: ClientConnection) -> None:
        try:
            for message in ws:
                self.events.put((number, message))
        except Exception:
            pass
        self.events.put((number, None))

    def run(self, until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        if self.current is None:
            self._open(deadline)
        while not until():
            assert time.monotonic() < deadline, f"timed out; got {len(self.trades)} trades"
            try:
                number, message = self.events.get(timeout=0.02)
            except queue.Empty:
                pass
            else:
                if message is None:                        # connection lost or closed
                    self.connections.pop(number, None)
                    if number == self.current:
                        self._open(deadline)
                elif number in self.connections:
                    self.connections[number]["last_rx"] = time.monotonic()
                    try:
                        frame = json.loads(message)
                    except ValueError:
                        continue
                    event = frame.get("event")
                    self.seen_events.append(event)
                    data = frame.get("data")
                    if (event == "trade" and frame.get("channel") == self.channel
                            and isinstance(data, dict) and isinstance(data.get("id"), int)):
                        self.trades.append((number, data["id"]))   # malformed ones skipped
                    elif event == "bts:request_reconnect" and number == self.current:
                        self._open(deadline)               # the old one stays until closed
            current = self.connections.get(self.current)
            now = time.monotonic()
            if current is not None and now - current["last_rx"] > self.silence:
                self.connections.pop(self.current)
                current["ws"].close_socket()               # stalled: give up on it
                self._open(deadline)
            elif current is not None and now - current["last_hb"] > self.heartbeat:
                current["last_hb"] = now
                try:
                    current["ws"].send('{"event": "bts:heartbeat"}')
                except ConnectionClosed:
                    pass

    def close(self) -> None:
        for connection in list(self.connections.values()):
            connection["ws"].close_socket()
        self.connections.clear()


# ---------------------------------------------------------------------------------------------
# routing, lifecycle

def test_urls_and_routing(sim):
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", sim.ws_url)
    assert sim.ws_url_for("bitstamp") == sim.ws_url + "/bitstamp"
    assert sim.ws_port != sim.port
    with pytest.raises(KeyError):
        sim.ws_url_for("nope")
    for path in ("/bitstamp", "/bitstamp/", "/bitstamp?x=1", "/bitstamp/v2"):
        with open_ws(sim, path) as ws:
            send(ws, "bts:heartbeat")
            assert recv_json(ws)["event"] == "bts:heartbeat"
    for path in ("/", "/bitstampx", "/nowhere/stream"):
        with pytest.raises(InvalidStatus) as caught:
            open_ws(sim, path)
        assert caught.value.response.status_code == 404
    assert sim.ws_connection_count() == 4


def test_websockets_start_and_stop_with_the_simulator():
    before = _sim_threads()
    simulator = Simulator(port=0).start()
    ws_url, http_url = simulator.ws_url_for("bitstamp"), simulator.url
    ws = connect(ws_url, open_timeout=3, legacy=True)
    subscribe(ws, "live_trades_btcusd", "order_book_btcusd")
    assert requests.get(http_url + "/api/v2/ticker/btcusd/", timeout=5).status_code == 200
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=3)
    assert ws.close_code == 1001     # the server went away politely
    with pytest.raises(OSError):
        connect(ws_url, open_timeout=1, legacy=True)
    assert not {t for t in _sim_threads() - before if t.is_alive()}


def test_stop_is_prompt_with_stalled_and_dropped_connections():
    before = _sim_threads()
    simulator = _make_sim().start()
    sockets = []
    for fault in ("stall", "drop", None):
        ws = websocket.create_connection(simulator.ws_url_for("bitstamp"), timeout=3)
        ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}))
        assert json.loads(ws.recv())["event"] == "bts:subscription_succeeded"
        if fault == "stall":
            simulator.set_ws_fault("stall", answer_pings=False)
        elif fault == "drop":
            simulator.set_ws_fault("drop")
        sockets.append(ws)     # and never read again: the client hangs too
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 5
    assert not {t for t in _sim_threads() - before if t.is_alive()}
    for ws in sockets:
        ws.close()


# ---------------------------------------------------------------------------------------------
# the protocol

def test_subscribe_ack_matches_the_recording(sim):
    recorded = json.loads((FIXTURES / "ws_subscription_succeeded.json").read_text())
    request = json.loads((FIXTURES / "ws_subscribe_request_diff_order_book.json").read_text())
    with open_ws(sim) as ws:
        ws.send(json.dumps(request))
        assert recv_json(ws) == recorded


def test_unsubscribe_stops_the_channel(sim):
    with open_ws(sim) as ws:
        subscribe(ws, "live_trades_btcusd")
        assert next_matching(ws, lambda f: f.get("event") == "trade")
        send(ws, "bts:unsubscribe", "live_trades_btcusd")
        next_matching(ws, lambda f: f.get("event") == "bts:unsubscription_succeeded")
        # the ack is the last frame of that channel
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        send(ws, "bts:heartbeat")
        assert recv_json(ws)["event"] == "bts:heartbeat"


def test_heartbeat_is_answered(sim):
    with open_ws(sim) as ws:
        send(ws, "bts:heartbeat")
        assert recv_json(ws) == {"event": "bts:heartbeat", "channel": "",
                                 "data": {"status": "success"}}


@pytest.mark.parametrize("message, reason", [
    ("this is not json", "Incorrect JSON format."),
    ('{"event": "bts:subscribe", "data": {"channel": ', "Incorrect JSON format."),
    ("[1, 2]", "Incorrect JSON format."),
    (b"\xff\x00binary", "Incorrect JSON format."),
    ('{"event": "bts:subscribe", "data": {"channel": "live_trades_nopair"}}',
     "Bad subscription string."),
    ('{"event": "bts:subscribe", "data": {"channel": "weird_channel_btcusd"}}',
     "Bad subscription string."),
    ('{"event": "bts:subscribe", "data": {"channel": "live_trades_"}}', "Bad subscription string."),
    ('{"event": "bts:subscribe", "data": {}}', "Bad subscription string."),
    ('{"event": "bts:subscribe"}', "Bad subscription string."),
    ('{"event": "bts:unsubscribe", "data": {"channel": 5}}', "Bad subscription string."),
    ('{"event": "bts:dance"}', "Bad event."),
])
def test_errors_and_the_connection_stays_usable(quiet, message, reason):
    with open_ws(quiet) as ws:
        ws.send(message)
        assert recv_json(ws) == {"event": "bts:error", "channel": "",
                                 "data": {"code": None, "message": reason}}
        subscribe(ws, "live_trades_btcusd")


def test_unknown_pairs_can_be_acknowledged_like_the_real_server():
    with Simulator(port=0, ws_exchanges=[BitstampWs(strict_channels=False)]) as simulator:
        with open_ws(simulator) as ws:
            subscribe(ws, "live_trades_nopair")
            send(ws, "bts:subscribe", "what_ever")
            assert recv_json(ws)["event"] == "bts:error"


# ---------------------------------------------------------------------------------------------
# lively data

@pytest.mark.parametrize("pair", ["btcusd", "ethbtc", "xrpusd", "usdtusd"])
def test_trade_frames(sim, pair):
    recorded = json.loads((FIXTURES / "ws_live_trades_trade_ethusd.json").read_text())
    assert list(recorded["data"]) == TRADE_KEYS and list(recorded) == ["data", "channel", "event"]
    with open_ws(sim) as ws:
        subscribe(ws, f"live_trades_{pair}")
        trades = [check_trade(next_matching(ws, lambda f: f["event"] == "trade"), pair)
                  for _ in range(15)]
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    micros = [int(t["microtimestamp"]) for t in trades]
    assert micros == sorted(micros)
    assert {t["type"] for t in trades} == {0, 1}   # 15 coin flips: both sides (p = 1 - 2**-14)


@pytest.mark.parametrize("pair", ["btcusd", "ethbtc", "xrpusd", "usdtusd"])
def test_order_book_frames(sim, pair):
    with open_ws(sim) as ws:
        subscribe(ws, f"order_book_{pair}")
        books = [next_matching(ws, lambda f: f["event"] == "data") for _ in range(8)]
    seen = set()
    for frame in books:
        assert list(frame) == ["data", "channel", "event"]
        assert frame["channel"] == f"order_book_{pair}" and frame["event"] == "data"
        book = frame["data"]
        assert list(book) == ["timestamp", "microtimestamp", "bids", "asks"]
        assert book["microtimestamp"][:10] == book["timestamp"]
        bids = check_levels(book["bids"], pair, descending=True)
        asks = check_levels(book["asks"], pair, descending=False)
        assert bids[0] < asks[0]                       # not crossed
        seen.add(json.dumps(book["bids"] + book["asks"]))
    assert len(seen) == len(books)                     # every snapshot is a change


def test_diff_order_book_frames_replay_onto_the_book(sim):
    """Snapshot N plus the diffs after it gives snapshot N + 1: every level of N + 1 is known
    with that amount, or comes from beyond N's 100 levels; every known level at least as good
    as N + 1's worst is in N + 1."""
    pair = "ethusd"
    with open_ws(sim) as ws:
        subscribe(ws, f"diff_order_book_{pair}", f"order_book_{pair}")
        frames = []
        while len(frames) < 40:
            frame = recv_json(ws)
            if frame["event"] == "data":
                frames.append(frame)
    known: dict[str, dict[Decimal, str]] | None = None
    previous_worst: dict[str, Decimal] = {}
    checked = 0
    for frame in frames:
        data = frame["data"]
        if frame["channel"] == f"diff_order_book_{pair}":
            check_levels(data["bids"], pair, descending=True, full=False)
            check_levels(data["asks"], pair, descending=False, full=False)
            assert data["bids"] or data["asks"]
            for side in ("bids", "asks") if known is not None else ():
                for price, amount in data[side]:
                    if Decimal(amount) == 0:
                        known[side].pop(Decimal(price), None)
                    else:
                        known[side][Decimal(price)] = amount
            continue
        if known is not None:
            for side, worse in (("bids", lambda a, b: a < b), ("asks", lambda a, b: a > b)):
                snapshot = {Decimal(p): a for p, a in data[side]}
                worst = Decimal(data[side][-1][0])
                for price, amount in snapshot.items():
                    if price in known[side]:
                        assert known[side][price] == amount
                    else:
                        assert worse(price, previous_worst[side])
                for price in known[side]:
                    if not worse(price, worst):
                        assert price in snapshot
            checked += 1
        known = {side: {Decimal(p): a for p, a in data[side]} for side in ("bids", "asks")}
        previous_worst = {side: Decimal(data[side][-1][0]) for side in ("bids", "asks")}
    assert checked >= 5


def test_websocket_prices_agree_with_rest(sim):
    rest = requests.get(sim.url + "/api/v2/order_book/btcusd/", timeout=5).json()
    rest_mid = (Decimal(rest["bids"][0][0]) + Decimal(rest["asks"][0][0])) / 2
    with open_ws(sim) as ws:
        subscribe(ws, "order_book_btcusd", "live_trades_btcusd")
        book = next_matching(ws, lambda f: f["event"] == "data")["data"]
        trade = next_matching(ws, lambda f: f["event"] == "trade")["data"]
    ws_mid = (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2
    assert abs(ws_mid - rest_mid) / rest_mid < Decimal("0.005")
    assert abs(Decimal(trade["price_str"]) - rest_mid) / rest_mid < Decimal("0.005")


def test_each_connection_gets_only_what_it_subscribed(sim):
    with open_ws(sim) as trades_ws, open_ws(sim) as books_ws, open_ws(sim) as idle_ws:
        subscribe(trades_ws, "live_trades_btcusd", "live_trades_ethusd")
        subscribe(books_ws, "order_book_ethusd")
        deadline = time.monotonic() + 0.6
        trade_frames, book_frames = [], []
        while time.monotonic() < deadline:
            trade_frames.append(recv_json(trades_ws))
            book_frames.append(recv_json(books_ws))
        with pytest.raises(TimeoutError):
            idle_ws.recv(timeout=0.1)
    assert {f["channel"] for f in trade_frames} == {"live_trades_btcusd", "live_trades_ethusd"}
    assert {f["event"] for f in trade_frames} == {"trade"}
    assert {(f["channel"], f["event"]) for f in book_frames} == {("order_book_ethusd", "data")}
    ids = [f["data"]["id"] for f in trade_frames]
    assert len(set(ids)) == len(ids)                  # exchange-wide ids, unique across pairs
    for pair in ("btcusd", "ethusd"):
        pair_ids = [f["data"]["id"] for f in trade_frames if f["channel"].endswith(pair)]
        assert pair_ids == sorted(pair_ids)


def test_rates_are_configurable_while_running(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)                      # no lively trades configured
        quiet.ws_exchange("bitstamp").trade_interval = 0.01
        quiet.ws_exchange("bitstamp").wake()
        assert next_matching(ws, lambda f: f["event"] == "trade", timeout=2)


def test_counters(quiet):
    assert quiet.ws_connection_count() == 0 and quiet.ws_frames_sent() == 0
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        send(ws, "bts:heartbeat")
        recv_json(ws)
    with open_ws(quiet) as ws:
        send(ws, "bts:heartbeat")
        recv_json(ws)
    assert quiet.ws_connection_count("bitstamp") == 2
    # counted once written, which may be a moment after the client has it
    assert wait_for(lambda: quiet.ws_frames_sent("bitstamp") == 3)
    time.sleep(0.05)
    assert quiet.ws_frames_sent("bitstamp") == 3


# ---------------------------------------------------------------------------------------------
# scripted trades

def test_scripted_trades_replace_the_lively_ones(sim):
    with open_ws(sim) as ws:
        subscribe(ws, "live_trades_btcusd")
        before = next_matching(ws, lambda f: f["event"] == "trade")["data"]["id"]
        ids = sim.ws_script_trades("btcusd", 40)
        assert len(ids) == 40 == len(set(ids)) and ids == sorted(ids) and ids[0] > before
        got = []
        while not got or got[-1] != ids[-1]:
            frame = next_matching(ws, lambda f: f["event"] == "trade")
            check_trade(frame, "btcusd")
            if frame["data"]["id"] >= ids[0]:
                got.append(frame["data"]["id"])
        assert got == ids                              # nothing lively in between
        # done once the last one was written, which may be a moment after the client has it
        assert wait_for(lambda: sim.ws_script_done("btcusd"))
        assert sim.ws_script_sent("btcusd") == 40
        # then the lively trades come back, with newer ids
        assert next_matching(ws, lambda f: f["event"] == "trade")["data"]["id"] > ids[-1]


def test_scripts_wait_for_a_subscriber(quiet):
    ids = quiet.ws_script_trades("ethusd", 10, interval=0.001)
    time.sleep(0.2)
    assert quiet.ws_script_sent("ethusd") == 0 and not quiet.ws_script_done("ethusd")
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_ethusd")
        assert [recv_json(ws)["data"]["id"] for _ in ids] == ids
    assert wait_for(lambda: quiet.ws_script_done("ethusd"))
    assert quiet.ws_script_sent("ethusd") == 10
    assert quiet.ws_script_done("btcusd") and quiet.ws_script_sent("btcusd") == 0
    assert quiet.ws_script_trades("btcusd", 0) == []
    with pytest.raises(ValueError):
        quiet.ws_script_trades("nopair", 3)


def test_each_scripted_trade_goes_to_one_connection_the_newest_subscribed(quiet):
    with open_ws(quiet) as older, open_ws(quiet) as newer:
        subscribe(older, "live_trades_ethusd")
        subscribe(newer, "live_trades_ethusd")
        ids = quiet.ws_script_trades("ethusd", 10, interval=0.001)
        assert [recv_json(newer)["data"]["id"] for _ in ids] == ids
        with pytest.raises(TimeoutError):
            older.recv(timeout=0.2)
        # a second script while one runs extends it: the numbering (and ws_script_sent) goes on
        first = quiet.ws_script_trades("ethusd", 200, interval=0.001)
        more = quiet.ws_script_trades("ethusd", 5, interval=0.001)
        assert more[0] > first[-1]
        assert [recv_json(newer)["data"]["id"] for _ in range(205)] == first + more
    assert wait_for(lambda: quiet.ws_script_sent("ethusd") == 205)


def test_scripted_trades_survive_drop_stall_and_request_reconnect(sim):
    count = 60
    sim.set_ws_fault("drop", at_trade=10)
    sim.set_ws_fault("stall", at_trade=25)
    sim.set_ws_fault("request_reconnect", at_trade=40, grace=0.5)
    sim.set_ws_fault("garbage", at_trade=50, count=4)
    ids = sim.ws_script_trades("btcusd", count)
    client = Collector(sim.ws_url_for("bitstamp"), "live_trades_btcusd")
    try:
        client.run(until=lambda: len(client.trades) >= count and sim.ws_script_done("btcusd"))
        settled = time.monotonic() + 0.3
        client.run(until=lambda: time.monotonic() > settled)         # no late duplicates
    finally:
        client.close()
    # lively trades come back once the script is done, with newer ids
    received = [trade_id for _, trade_id in client.trades if trade_id <= ids[-1]]
    assert sorted(received) == ids and len(received) == count      # each exactly once
    for number in {n for n, _ in client.trades}:                    # in order on each connection
        on_it = [i for n, i in client.trades if n == number]
        assert on_it == sorted(on_it)
    assert client.opened >= 4 and sim.ws_connection_count() == client.opened
    assert "bts:request_reconnect" in client.seen_events
    assert sim.list_ws_faults() == []                                # all of them fired
    # trades 1-9 on the first connection, 10-24 on the second (the drop moved trade 10)
    first = [i for n, i in client.trades if n == 1]
    assert first == ids[:9]
    second = [i for n, i in client.trades if n == 2]
    assert second == ids[9:24]


def test_drop_keeps_what_was_sent_and_sends_no_close_frame(quiet):
    ids = quiet.ws_script_trades("btcusd", 20, interval=0)
    quiet.set_ws_fault("drop", at_trade=11)
    # websocket-client reads lazily, straight from the socket: what it gets after the drop
    # was in the kernel's buffers when the server ended the stream.
    ws = websocket.create_connection(quiet.ws_url_for("bitstamp"), timeout=3)
    ws.send(json.dumps({"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}))
    assert wait_for(lambda: quiet.ws_script_sent("btcusd") == 10)
    time.sleep(0.3)                                  # the drop has happened by now
    assert quiet.ws_script_sent("btcusd") == 10      # trade 11 waits for the next connection
    assert json.loads(ws.recv())["event"] == "bts:subscription_succeeded"
    assert [json.loads(ws.recv())["data"]["id"] for _ in range(10)] == ids[:10]
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()                                    # a FIN, not a close frame, not a reset
    ws.close()
    with open_ws(quiet) as again:
        subscribe(again, "live_trades_btcusd")
        assert [recv_json(again)["data"]["id"] for _ in range(10)] == ids[10:]


def test_drop_without_at_trade_hits_every_open_connection(quiet):
    with open_ws(quiet) as a, open_ws(quiet) as b, open_ws(quiet) as other:
        subscribe(a, "live_trades_btcusd")
        subscribe(b, "order_book_btcusd")
        quiet.set_ws_fault("drop")
        for ws in (a, b, other):
            with pytest.raises(ConnectionClosedError) as caught:
                ws.recv(timeout=3)
            assert caught.value.rcvd is None         # no close frame came
    assert quiet.list_ws_faults() == []


def test_fault_with_no_open_connection_hits_the_next_one_after_its_ack(quiet):
    quiet.set_ws_fault("drop", times=2)
    assert quiet.list_ws_faults()[0]["times"] == 2
    for _ in range(2):
        with open_ws(quiet) as ws:
            send(ws, "bts:heartbeat")
            assert recv_json(ws)["event"] == "bts:heartbeat"   # not yet: no subscription
            subscribe(ws, "live_trades_btcusd")                 # the ack arrives, then
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=3)                              # the drop
    assert quiet.list_ws_faults() == []
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        send(ws, "bts:heartbeat")
        assert recv_json(ws)["event"] == "bts:heartbeat"


def test_stall_sends_nothing_not_even_heartbeats(sim):
    with open_ws(sim) as ws:
        subscribe(ws, "live_trades_btcusd", "order_book_btcusd")
        recv_json(ws)
        sim.set_ws_fault("stall")
        time.sleep(0.1)
        while True:                                   # what was on the way before the stall
            try:
                ws.recv(timeout=0.2)
            except TimeoutError:
                break
        send(ws, "bts:heartbeat")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        # protocol-level pings are still answered by the websocket library
        assert ws.ping().wait(2)


def test_stall_without_pongs_and_for_some_seconds(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        quiet.set_ws_fault("stall", seconds=0.6, answer_pings=False)
        pong = ws.ping()
        send(ws, "bts:heartbeat")
        assert not pong.wait(0.3)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.1)
        time.sleep(0.4)                               # the stall is over
        send(ws, "bts:heartbeat")
        assert recv_json(ws)["event"] == "bts:heartbeat"
        assert ws.ping().wait(2)


def test_clear_ws_faults_ends_stalls_and_refusals_and_forgets_pending(quiet):
    quiet.set_ws_fault("drop", at_trade=3)
    quiet.set_ws_fault("refuse", seconds=30)
    assert len(quiet.list_ws_faults()) == 1
    assert quiet.clear_ws_faults() == 1
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        quiet.set_ws_fault("stall")
        send(ws, "bts:heartbeat")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        quiet.clear_ws_faults()
        send(ws, "bts:heartbeat")
        assert recv_json(ws)["event"] == "bts:heartbeat"


def test_request_reconnect_then_close_after_grace(quiet):
    with open_ws(quiet) as ws:
        subscribe(ws, "live_trades_btcusd")
        quiet.set_ws_fault("request_reconnect", grace=0.4)
        started = time.monotonic()
        assert recv_json(ws) == {"event": "bts:request_reconnect", "channel": "", "data": ""}
        send(ws, "bts:heartbeat")                     # still served during the grace
        assert recv_json(ws)["event"] == "bts:heartbeat"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=3)
        assert 0.3 < time.monotonic() - started < 3
        assert ws.close_code == 1000


def test_refuse_then_accept(quiet):
    quiet.set_ws_fault("refuse", seconds=0.5)
    with pytest.raises(InvalidStatus) as caught:
        open_ws(quiet)
    assert caught.value.response.status_code == 503
    assert wait_for(lambda: _can_connect(quiet), timeout=3)
    assert quiet.ws_connection_count() == 1 and quiet.ws.refused_count("bitstamp") >= 1
    quiet.set_ws_fault("refuse", seconds=0.5, status=0)   # no HTTP answer at all
    with pytest.raises(InvalidHandshake) as caught:
        open_ws(quiet)
    assert not isinstance(caught.value, InvalidStatus)   # no HTTP status line came back
    assert wait_for(lambda: _can_connect(quiet), timeout=3)


def _can_connect(sim: Simulator) -> bool:
    try:
        with open_ws(sim) as ws:
            subscribe(ws, "live_trades_btcusd")
        return True
    except (InvalidHandshake, ConnectionClosed, OSError):
        return False


def test_refuse_at_a_trade_blocks_the_reconnect_for_a_while(quiet):
    quiet.set_ws_fault("drop", at_trade=5)
    quiet.set_ws_fault("refuse", at_trade=5, seconds=0.5)
    ids = quiet.ws_script_trades("btcusd", 10)
    client = Collector(quiet.ws_url_for("bitstamp"), "live_trades_btcusd")
    try:
        client.run(until=lambda: len(client.trades) >= 10)
    finally:
        client.close()
    assert [i for _, i in client.trades] == ids
    assert quiet.ws.refused_count("bitstamp") >= 1


def test_garbage_then_carry_on(sim):
    with open_ws(sim) as ws:
        subscribe(ws, "live_trades_btcusd")
        recv_json(ws)
        sim.set_ws_fault("garbage", count=4)
        odd = []
        while len(odd) < 4:
            message = ws.recv(timeout=3)
            if isinstance(message, bytes):
                odd.append(("binary", message))
                continue
            try:
                frame = json.loads(message)
            except ValueError:
                odd.append(("not json", message))
                continue
            if frame.get("event") != "trade" or "id" not in frame.get("data", {}):
                odd.append(("odd json", frame))
        assert [kind for kind, _ in odd] == ["not json", "binary", "odd json", "odd json"]
        assert odd[2][1]["event"] == "bts:unknown_event"
        broken = odd[3][1]
        assert broken["event"] == "trade" and broken["channel"] == "live_trades_btcusd"
        assert set(TRADE_KEYS) - set(broken["data"]) == {"id"}
        check_trade(next_matching(ws, lambda f: f["event"] == "trade"), "btcusd")   # as before


def test_set_ws_fault_rejects_mistakes(quiet):
    assert set(WS_FAULT_KINDS) == {"drop", "stall", "request_reconnect", "garbage", "refuse"}
    for kind, params in [("nope", {}), ("drop", {"seconds": 1}), ("garbage", {"count": 0}),
                         ("drop", {"times": 0}), ("drop", {"at_trade": 0}),
                         ("refuse", {"status": 200}), ("request_reconnect", {"grace": -1})]:
        with pytest.raises(ValueError):
            quiet.set_ws_fault(kind, **params)
    with pytest.raises(KeyError):
        quiet.set_ws_fault("drop", exchange="nope")
    assert quiet.set_ws_fault("stall", at_trade=3, seconds=1, pair="btcusd") == {
        "kind": "stall", "exchange": "bitstamp", "at_trade": 3, "times": 1, "pair": "btcusd",
        "seconds": 1, "answer_pings": True}


def test_main_serves_websockets_too():
    command = [sys.executable, "-c", "import sys; from proj.sim import main; sys.exit(main())",
               "--port", "0", "--ws-port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not (match := re.search(r"simulator websockets on (ws://127\.0\.0\.1:\d+) "
                                      r"\(.*bitstamp: (ws://127\.0\.0\.1:\d+/bitstamp)[,)]",
                                      seen[-1] if seen else "")):
            seen.append(process.stderr.readline())
            assert seen[-1], f"exited before listening: {seen}"
        assert match.group(2) == match.group(1) + "/bitstamp"
        assert any("simulator listening on http://" in line for line in seen)
        with connect(match.group(2), open_timeout=3) as ws:
            subscribe(ws, "live_trades_btcusd")
            assert next_matching(ws, lambda f: f["event"] == "trade", timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=10)
    assert process.returncode == 0
    assert re.search(r"WS /bitstamp #1 open", rest)
