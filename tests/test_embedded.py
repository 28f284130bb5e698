"""The embedded default: no services at all (filesystem broker, file results, SQLite store)."""
import json
import os
import subprocess
import sys

from proj.store import open_store

from .conftest import ROOT, start_worker, stop_worker
from .schema import assert_valid

CLIENT = """
import json
from celery.result import AsyncResult
from proj.celery import app
from tasks.fetch import fetch
from tasks.poll import poll

assert app.conf.broker_url.startswith("filesystem://"), app.conf.broker_url
book = fetch.delay("bitstamp", "order_book", "BTC/USD").get(timeout=60)
chain_id = poll.apply_async(("bitstamp", "trades", "BTC/USD"), expires=60).get(timeout=60)
stored = AsyncResult(chain_id).get(timeout=60)
print(json.dumps({"book": book, "stored": stored}))
"""


def embedded_env(data_dir, sim_url):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("COLLECTOR_") or k == "COLLECTOR_CONFIG"}
    env.update(COLLECTOR_DATA_DIR=str(data_dir), COLLECTOR_BITSTAMP_REST_URL=sim_url)
    return env


def test_fetch_and_poll_on_the_embedded_defaults(sim, tmp_path):
    env = embedded_env(tmp_path, sim.url)
    proc = start_worker(env, tmp_path / "worker.log")
    try:
        client = subprocess.run([sys.executable, "-c", CLIENT], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        stop_worker(proc)
    assert client.returncode == 0, client.stderr[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
    result = json.loads(client.stdout.strip().splitlines()[-1])
    assert_valid(result["book"])
    assert result["stored"]["stored"] == result["stored"]["received"] > 0
    store = open_store(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        assert store.count("trade", exchange="bitstamp") == result["stored"]["stored"]
    finally:
        store.close()
