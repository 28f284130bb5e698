"""The benchmark suite cannot rot: `python -m bench --quick` runs whole, on the real services,
and prints every figure beside its floor. Nothing here judges a timing: only that each figure
was measured (a number, its floor and their ratio) and that the plot was drawn."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.services
BENCH_VHOST = "collector_bench"

EXPECTED = {   # benchmark -> figures that must be there (by name), or a minimum count of rows
    "ingest": [f"{kind}, batch {size}" for kind in ("trades", "books") for size in (1, 10, 100, 500)],
    "delay": [f"receive → {to}, {stat}" for to in ("committed row", "pub/sub message")
              for stat in ("p50", "p99", "max")],
    "rtt": ["collector.fetch.delay().get(), Bitstamp book", "trivial Celery task round trip"],
    "normalize": 10,   # a trade and a book frame of each of the five websocket exchanges
    "polls": 1,
    "memory": 2,
}


def bench_broker_url() -> str:
    """A RabbitMQ vhost of the benchmark's own: the test session's workers stay out of it."""
    subprocess.run(["rabbitmqctl", "add_vhost", BENCH_VHOST], capture_output=True, timeout=60)
    done = subprocess.run(["rabbitmqctl", "set_permissions", "-p", BENCH_VHOST, "guest",
                           ".*", ".*", ".*"], capture_output=True, timeout=60)
    vhost = BENCH_VHOST if done.returncode == 0 else ""
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


@pytest.mark.timeout(600)
def test_quick_suite_prints_every_figure_with_its_floor(tmp_path):
    plot = tmp_path / "ingest.png"
    env = dict(os.environ, BENCH_BROKER_URL=bench_broker_url(), PYTHONPATH=str(ROOT))
    for name in [name for name in env if name.startswith("COLLECTOR_")]:
        del env[name]   # the suite sets its own; the test session's would leak in
    env["COLLECTOR_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", "--plot", str(plot)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=590)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    results = {result["name"]: result for result in document["benchmarks"]}
    assert set(results) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        rows = results[name]["rows"]
        if isinstance(expected, int):
            assert len(rows) >= expected, (name, rows)
        else:
            assert [row["figure"] for row in rows] == expected
        for row in rows:
            for key in ("value", "floor_value", "ratio"):
                assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (name, row)
            assert row["value"] > 0 and row["floor_value"] > 0, (name, row)
            assert row["floor"] and row["unit"], (name, row)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The human table carries the same figures.
    table = subprocess.run([sys.executable, "-m", "bench", "rtt", "--quick"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr[-3000:]
    assert "collector.fetch.delay().get(), Bitstamp book" in table.stdout
    assert "floor_value" in table.stdout and "ratio" in table.stdout
