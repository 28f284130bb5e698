"""rtt: collector.fetch.delay(...).get() of a Bitstamp book from the simulator, beside a plain
requests.get of the same URL and a trivial Celery task's round trip, interleaved in one run."""
from __future__ import annotations

import time

import requests

from .harness import Worker, figure, median_ms, use_own_vhost, use_real_services


def run(quick: bool = False) -> dict:
    use_real_services()
    use_own_vhost("bench_rtt")
    from proj.celery import app
    from proj.sim import Simulator
    from tasks.fetch import fetch

    runs = 30 if quick else 200
    with Simulator(port=0).start() as sim, Worker(env={
            "COLLECTOR_BITSTAMP_REST_URL": sim.url,
            # The simulator is ours: Bitstamp's real budget (130 a 10 s) would make fetches
            # wait for the limiter, not measure them. The limiter's own check still runs.
            "COLLECTOR_BITSTAMP_RATE_LIMIT": "1000000/1"}):
        url = f"{sim.url}/api/v2/order_book/btcusd/"
        session = requests.Session()
        samples = {"requests.get": [], "celery no-op": [], "collector.fetch": []}
        calls = {
            "requests.get": lambda: session.get(url, timeout=10).content,
            "celery no-op": lambda: app.send_task("celery.accumulate", args=[1]).get(timeout=30),
            "collector.fetch": lambda: fetch.delay("bitstamp", "order_book", "BTC/USD").get(timeout=30),
        }
        for call in calls.values():
            call()   # warm-up: connections, imports, caches
        for _ in range(runs):   # interleaved, so drift in machine load hits all three alike
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
    medians = {name: median_ms(values) for name, values in samples.items()}
    floor = medians["requests.get"]
    fetch_ms = medians["collector.fetch"]
    return {
        "name": "rtt", "runs": runs, "unit": "ms",
        "rows": [
            figure("collector.fetch.delay().get(), Bitstamp book", fetch_ms, "ms",
                   "plain requests.get, same URL", floor, "≤ floor + 3 ms", fetch_ms <= floor + 3,
                   over_floor_ms=round(fetch_ms - floor, 3)),
            figure("trivial Celery task round trip", medians["celery no-op"], "ms",
                   "plain requests.get, same URL", floor,
                   over_floor_ms=round(medians["celery no-op"] - floor, 3)),
        ],
    }
