"""`python -m proj fetch`: one JSON document on stdout, logs on stderr, exit 0 or 1."""
import json
import os
import subprocess
import sys

from .conftest import ROOT
from .schema import assert_valid


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "proj", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env or os.environ)


def test_fetch_prints_one_record(fresh_sim):
    done = run_cli("fetch", "bitstamp", "order_book", "BTC/USD", "--base-url", fresh_sim.url,
                   "--limit", "5")
    assert done.returncode == 0, done.stderr
    book = json.loads(done.stdout)   # exactly one document
    assert_valid(book)
    assert len(book["bids"]) == 5


def test_fetch_candles_via_environment_url(fresh_sim):
    env = dict(os.environ, COLLECTOR_BITSTAMP_REST_URL=fresh_sim.url)
    done = run_cli("fetch", "bitstamp", "candles", "BTC/USD", "--timeframe", "15m", "--limit", "4",
                   env=env)
    assert done.returncode == 0, done.stderr
    assert_valid(json.loads(done.stdout))


def test_fetch_error_exits_1_with_the_error_object(fresh_sim):
    fresh_sim.set_fault("/api/v2/ticker/btcusd/", "status", status=500)
    done = run_cli("fetch", "bitstamp", "ticker", "BTC/USD", "--base-url", fresh_sim.url,
                   "--attempts", "2", "--timeout", "2")
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error == {"err": "http_status", "detail": error["detail"], "status": 500, "attempts": 2,
                     "exchange": "bitstamp", "symbol": "BTC/USD", "type": "ticker"}
    assert "err=http_status" in done.stderr   # the log line
