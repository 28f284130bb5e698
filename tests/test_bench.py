"""The benchmark suite cannot rot: `python -m bench --quick` runs whole, on the real services,
and prints every figure beside its floor. Nothing here judges a timing: only that each figure
was measured (a number, its floor and their ratio) and that the plot was drawn."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.services

EXPECTED = {   # benchmark -> figures that must be there (by name), or a minimum count of rows
    "ingest": [f"{kind}, batch {size}" for kind in ("trades", "books") for size in (1, 10, 100, 500)],
    "delay": [f"receive → {to}, {stat}" for to in ("committed row", "pub/sub message")
              for stat in ("p50", "p99", "max")],
    "rtt": ["collector.fetch.delay().get(), Bitstamp book", "trivial Celery task round trip"],
    "normalize": 10,   # a trade and a book frame of each of the five websocket exchanges
    "polls": 1,
    "memory": 2,
}


@pytest.mark.timeout(900)
def test_quick_suite_prints_every_figure_with_its_floor(tmp_path, capsys):
    plot = tmp_path / "ingest.png"
    # each benchmark makes a RabbitMQ vhost of its own (bench_<name>) on this server
    env = dict(os.environ, BENCH_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
               PYTHONPATH=str(ROOT))
    for name in [name for name in env if name.startswith("COLLECTOR_")]:
        del env[name]   # the suite sets its own; the test session's would leak in
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["COLLECTOR_DATA_DIR"] = str(tmp_path / "data")
    # its own process group: on a timeout the suite's workers and simulator go with it
    suite = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--json", "--plot", str(plot)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        stdout, stderr = suite.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(suite.pid, signal.SIGKILL)
        suite.communicate()
        raise
    assert suite.returncode == 0, stderr[-3000:]
    document = json.loads(stdout)
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
            # a 0 is frames lost or a timeout; a slow machine may sustain no poll rate at all
            assert row["floor_value"] > 0 and (row["value"] > 0 or name == "polls"), (name, row)
            assert row["floor"] and row["unit"], (name, row)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The human table carries the same figures.
    from bench.__main__ import print_table
    print_table(results["rtt"])
    table = capsys.readouterr().out
    assert "collector.fetch.delay().get(), Bitstamp book" in table
    assert "floor_value" in table and "ratio" in table
