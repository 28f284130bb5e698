"""The metrics endpoint, scraped over HTTP after known traffic through a real worker."""
import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tasks.ingest import ingest

from .conftest import ROOT

pytestmark = pytest.mark.services


def trade_frame(trade_id: int) -> str:
    return ('{"data":{"id":%d,"timestamp":"1700000000","amount":0.5,"amount_str":"0.50000000",'
            '"price":100.5,"price_str":"100.50","type":1,"microtimestamp":"1700000000%06d",'
            '"buy_order_id":1,"sell_order_id":2},"channel":"live_trades_xrpeur","event":"trade"}'
            % (trade_id, trade_id % 1_000_000))


@pytest.fixture
def exporter():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "proj", "metrics", "--port", str(port)],
                            cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def scrape(url: str) -> dict:
    values = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=10).text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_counters_equal_the_traffic(worker, exporter):
    messages = ("collector_messages_total",
                (("exchange", "bitstamp"), ("symbol", "XRP/EUR"), ("type", "trade")))
    errors = ("collector_errors_total", (("error_type", "bad_json"), ("exchange", "bitstamp")))
    before = scrape(exporter)
    base = int(time.time() * 1000)
    frames = [[base, trade_frame(9_000_000 + base % 1_000_000 * 10 + i)] for i in range(7)]
    frames.append([base, "not json"])
    ingest.apply_async(args=["bitstamp", frames[:4]])
    ingest.apply_async(args=["bitstamp", frames[4:]])   # two batches, maybe two processes

    def after():
        values = scrape(exporter)
        return (values.get(messages, 0) - before.get(messages, 0),
                values.get(errors, 0) - before.get(errors, 0), values)
    deadline = time.monotonic() + 30
    while (result := after())[:2] != (7, 1) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert result[:2] == (7, 1)
    values = result[2]
    age = ("collector_data_age_seconds",
           (("exchange", "bitstamp"), ("symbol", "XRP/EUR"), ("type", "trade")))
    assert 0 <= values[age] < 60
    assert values[("collector_ingest_delay_seconds_count", ())] >= 7
