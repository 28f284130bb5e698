"""Health: a stalled streamer is marked unhealthy and restarted; polls report; status shows it."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from proj.health import check_health, record_poll, system_status
from proj.state import FileState
from streamers.supervisor import Supervisor, read_status

from .conftest import ROOT
from .test_streaming import stream, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def health_env(sim, tmp_path, monkeypatch):
    config = tmp_path / "collectors.toml"
    config.write_text('[[stream]]\nexchange = "bitstamp"\nsymbols = ["BTC/USD"]\ntypes = ["trades"]\n'
                      '[[poll]]\nexchange = "bitstamp"\nsymbols = ["ETH/USD"]\ntypes = ["ticker"]\n'
                      'interval = 5\n')
    monkeypatch.setenv("COLLECTOR_CONFIG", str(config))
    monkeypatch.setenv("COLLECTOR_BITSTAMP_WS_URL", sim.ws_url_for("bitstamp"))
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COLLECTOR_REDIS_URL", raising=False)
    monkeypatch.setenv("MAX_SILENCE_DURATION", "2")
    monkeypatch.setenv("RECONNECT_DELAY", "0.1")
    monkeypatch.setenv("COLLECTOR_RECONNECT_DELAY_CAP", "0.5")
    sim.clear_ws_faults()
    yield FileState(tmp_path / "state")
    sim.clear_ws_faults()


def test_stalled_streamer_is_found_unhealthy_and_restarted(worker, sim, health_env):
    state = health_env
    supervisor = Supervisor([stream("bitstamp", ["BTC/USD"])], state=state)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: (read_status(state) or {}).get("collectors", {}).get("bitstamp", {})
                 .get("statistics", {}).get("messages_received", 0) > 0)
        assert check_health(state)["collectors"]["bitstamp"]["health_status"]["is_healthy"]

        sim.set_ws_fault("stall", times=1000)   # every connection stalls: no data at all

        def unhealthy():
            """the health check finds the silent streamer"""
            report = check_health(state)
            return not report["collectors"]["bitstamp"]["health_status"]["is_healthy"] and report
        report = wait_for(unhealthy, seconds=30, every=0.5)   # (the limit is 2 s)
        assert "no data within the silence limit" in report["collectors"]["bitstamp"]["health_status"]["issues"]

        def restarted():
            """the supervisor restarted it on the health check's word"""
            return (read_status(state) or {})["collectors"]["bitstamp"]["statistics"]["restarts"] >= 1
        wait_for(restarted, seconds=15)

        sim.clear_ws_faults()
        done = subprocess.run([sys.executable, "-m", "proj", "status", "--json"], cwd=ROOT,
                              env=dict(os.environ), capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        status = json.loads(done.stdout)
        assert status["statistics"]["restarts_performed"] >= 1
        assert status["collectors"]["bitstamp"]["statistics"]["restarts"] >= 1
        assert status["collectors"]["bitstamp"]["kind"] == "stream"
    finally:
        supervisor.stop()
        thread.join(30)


def test_health_check_gives_up_after_max_attempts(health_env, monkeypatch):
    state = health_env
    monkeypatch.setenv("MAX_RECONNECT_ATTEMPTS", "2")
    monkeypatch.setenv("RECONNECT_DELAY", "0")
    state.put("streamers", {"updated": time.time(), "supervisor_running": True, "collectors": {
        "bitstamp": {"name": "bitstamp", "exchange": "bitstamp", "status": "running",
                     "should_be_running": True, "symbols": ["BTC/USD"], "data_types": ["trades"],
                     "auto_restart": True, "health": {"time_since_data": 99},
                     "statistics": {"restarts": 0, "messages_received": 0},
                     "health_status": {"is_healthy": False, "issues": ["no data"]}}}})
    asked = []
    for _ in range(4):
        check_health(state, ask_supervisor=lambda verb, name: asked.append(verb))
    assert asked == ["restart", "restart", "fail", "fail"]


def test_polls_report_heartbeats_and_errors(health_env):
    state = health_env
    for error in ("timeout", "timeout", None):
        record_poll(state, "bitstamp", "ticker", "ETH/USD", error)
    poll = system_status(state)["collectors"]["poll bitstamp ticker ETH/USD"]
    assert poll["kind"] == "poll" and poll["statistics"]["errors_by_code"] == {"timeout": 2}
    assert poll["health"]["time_since_heartbeat"] < 5
    assert "no data within the silence limit" in poll["health_status"]["issues"]   # nothing stored


def test_a_poll_not_yet_due_is_pending_not_missing(health_env):
    state = health_env
    check_health(state, ask_supervisor=lambda verb, name: None)   # first sight of the poll
    poll = system_status(state)["collectors"]["poll bitstamp ticker ETH/USD"]
    assert poll["status"] == "pending" and poll["health_status"]["issues"] == []
