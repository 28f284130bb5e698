"""Streaming end to end: simulator websocket -> streamer processes (supervised) -> RabbitMQ ->
worker -> PostgreSQL and Redis, across a dropped connection, a stall and a reconnect request."""
import os
import signal
import threading
import time

import pytest

from streamers.supervisor import Supervisor, read_status, send_command

pytestmark = pytest.mark.services


@pytest.fixture
def streaming_env(sim, tmp_path, monkeypatch):
    """Environment the supervisor's spawned streamer processes inherit."""
    monkeypatch.setenv("COLLECTOR_BITSTAMP_WS_URL", sim.ws_url_for("bitstamp"))
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))   # shared state: files here
    monkeypatch.delenv("COLLECTOR_REDIS_URL", raising=False)
    monkeypatch.setenv("MAX_SILENCE_DURATION", "2")
    monkeypatch.setenv("RECONNECT_DELAY", "0.1")
    monkeypatch.setenv("COLLECTOR_RECONNECT_DELAY_CAP", "1")
    sim.clear_ws_faults()
    yield
    sim.clear_ws_faults()


@pytest.fixture
def supervise():
    running = []

    def start(streams):
        supervisor = Supervisor(streams)
        thread = threading.Thread(target=supervisor.run, daemon=True)
        thread.start()
        running.append((supervisor, thread))
        return supervisor

    yield start
    for supervisor, thread in running:
        supervisor.stop()
        thread.join(30)


def stream(name, symbols, **extra):
    return {"name": name, "exchange": "bitstamp", "symbols": symbols, "types": ["trades"],
            "enabled": True, "batch_size": 20, "batch_ms": 20, "max_silence": None, **extra}


def wait_for(condition, seconds=60, every=0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {seconds}s: {condition.__doc__ or condition}")


def stored_ids(store, symbol):
    return [t["id"] for t in store.fetch("trade", exchange="bitstamp", symbol=symbol, limit=None)]


def test_known_trades_arrive_exactly_once_across_drop_stall_and_reconnect_request(
        worker, sim, streaming_env, supervise, store):
    supervisor = supervise([stream("bitstamp", ["BTC/USD"])])
    wait_for(lambda: sim.ws_connection_count("bitstamp") >= 1)
    connections_before = sim.ws_connection_count("bitstamp")

    count = 200
    sim.set_ws_fault("drop", at_trade=50)
    sim.set_ws_fault("stall", at_trade=100)
    sim.set_ws_fault("request_reconnect", at_trade=150, grace=2)
    script = [str(i) for i in sim.ws_script_trades("btcusd", count, interval=0.005)]
    wait_for(lambda: sim.ws_script_done("btcusd"), seconds=90)

    def all_stored():
        """every scripted trade is in the store"""
        return set(script) <= set(stored_ids(store, "BTC/USD"))
    wait_for(all_stored, seconds=60)

    ids = [i for i in stored_ids(store, "BTC/USD") if i in set(script)]
    assert sorted(ids, key=int) == sorted(script, key=int)   # each once: none lost, none twice
    assert sim.ws_connection_count("bitstamp") - connections_before >= 3

    def reconnects_reported():
        """the status (written every second) shows the three reconnects and every trade"""
        status = read_status()
        stats = status and status["collectors"]["bitstamp"]["statistics"]
        return stats and stats["reconnect_attempts"] >= 3 and stats["messages_received"] >= count
    wait_for(reconnects_reported, seconds=10)
    assert supervisor.get_health_status("bitstamp")["is_running"]


def test_killed_streamer_is_restarted_and_disabled_one_stays_down(
        worker, sim, streaming_env, supervise, store):
    supervisor = supervise([stream("btc", ["BTC/USD"]), stream("eth", ["ETH/USD"])])

    def both_flowing():
        """both streams running with data"""
        status = read_status()
        return status and all(c["status"] == "running" and c["statistics"]["messages_received"] > 0
                              for c in status["collectors"].values()) and status
    status = wait_for(both_flowing)

    old_pid = status["collectors"]["btc"]["pid"]
    os.kill(old_pid, signal.SIGKILL)

    def restarted():
        """btc restarted under a new pid"""
        c = read_status()["collectors"]["btc"]
        return c["status"] == "running" and c["pid"] not in (None, old_pid) and c
    btc = wait_for(restarted, seconds=30)
    assert btc["statistics"]["restarts"] == 1 and btc["statistics"]["last_restart_time"]

    eth_pid = read_status()["collectors"]["eth"]["pid"]
    reply = send_command("disable", "eth")
    assert reply["ok"], reply
    wait_for(lambda: read_status()["collectors"]["eth"]["status"] == "disabled", seconds=10)
    time.sleep(2)
    status = read_status()["collectors"]["eth"]
    assert status["status"] == "disabled" and status["pid"] is None   # stays down
    with pytest.raises(ProcessLookupError):
        os.kill(eth_pid, 0)                                              # its process is gone

    before = store.count("trade", symbol="BTC/USD")
    wait_for(lambda: store.count("trade", symbol="BTC/USD") > before, seconds=30)   # others flow

    assert send_command("enable", "eth")["ok"]
    wait_for(lambda: read_status()["collectors"]["eth"]["status"] == "running", seconds=10)
    assert send_command("restart", "nope")["ok"] is False
