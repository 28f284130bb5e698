"""ingest: the simulator's websocket blasting N scripted trade frames -> streamer -> RabbitMQ
-> worker (validate, normalize) -> PostgreSQL rows, at several batch sizes, side by side in
one run; plus, at a steady rate, the delay from a frame's receive time to its committed row
(seen on Redis pub/sub, which the worker publishes right after the commit)."""
from __future__ import annotations

import statistics
import threading
import time

import orjson
import redis

from .harness import Worker, percentile, use_real_services

REDIS_URL = "redis://127.0.0.1:6379/12"


class RowWatcher:
    """Counts committed trades of one symbol, from the worker's post-commit pub/sub."""

    def __init__(self, symbol: str):
        self.delays: list[float] = []
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        self.pubsub = redis.Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{f"collector:bitstamp:trade:{symbol}": self._on_row})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.001, daemon=True)

    def _on_row(self, message) -> None:
        seen = time.time() * 1000
        record = orjson.loads(message["data"])
        with self.lock:
            self.ids.add(record["id"])
            self.delays.append(seen - record["received"])

    def wait_for(self, ids: set[str], seconds: float) -> float | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if ids <= self.ids:
                    return time.monotonic()
            time.sleep(0.002)
        return None

    def close(self) -> None:
        self.thread.stop()
        self.pubsub.close()


def _stream(sim, symbol: str, batch_size: int, batch_ms: float):
    from proj.celery import app
    from streamers.connection import Streamer

    def send(frames):
        app.send_task("collector.ingest", args=["bitstamp", frames])

    streamer = Streamer("bitstamp", [symbol], ["trades"], send, ws_url=sim.ws_url_for("bitstamp"),
                        batch_size=batch_size, batch_ms=batch_ms)
    thread = threading.Thread(target=streamer.run, daemon=True)
    thread.start()
    return streamer, thread


def _run_script(sim, pair: str, symbol: str, count: int, interval: float, batch_size: int,
                batch_ms: float) -> dict:
    watcher = RowWatcher(symbol)
    streamer, thread = _stream(sim, symbol, batch_size, batch_ms)
    try:
        deadline = time.monotonic() + 20
        while sim.ws_connection_count("bitstamp") == 0 or not streamer.stats.connections:
            if time.monotonic() > deadline:
                raise RuntimeError("streamer did not connect")
            time.sleep(0.05)
        time.sleep(0.3)   # subscribed
        started = time.monotonic()
        if interval:   # a steady rate: a small burst every 10 ms
            ids, per_tick, tick = set(), max(1, round(0.01 / interval)), time.monotonic()
            while len(ids) < count:
                ids.update(str(i) for i in sim.ws_blast_trades(pair, min(per_tick, count - len(ids))))
                tick += 0.01
                time.sleep(max(0.0, tick - time.monotonic()))
        else:          # as fast as the simulator can write
            ids = {str(i) for i in sim.ws_blast_trades(pair, count)}
        finished = watcher.wait_for(ids, seconds=max(60, count / 200))
        elapsed = (finished or time.monotonic()) - started
        with watcher.lock:
            delays = list(watcher.delays)
            stored = len(ids & watcher.ids)
        return {"stored": stored, "seconds": elapsed, "delays_ms": delays}
    finally:
        streamer.stop()
        thread.join(10)
        watcher.close()


def run(quick: bool = False) -> dict:
    use_real_services()
    import os
    os.environ["COLLECTOR_REDIS_URL"] = REDIS_URL
    from proj.sim import Simulator

    count = 3000 if quick else 20000
    rows = []
    with Simulator(port=0).start() as sim, Worker(queues="ingest", concurrency=2):
        sim.ws_exchange("bitstamp").trade_interval = None   # only the scripted trades
        for batch_size in (1, 10, 100):
            n = count // 10 if batch_size == 1 else count   # one task a frame is slow: fewer
            result = _run_script(sim, "btcusd", "BTC/USD", n, 0.0, batch_size, 50)
            rows.append({"what": f"blast, batch {batch_size}", "frames": n,
                         "stored": result["stored"],
                         "frames_per_s": round(result["stored"] / result["seconds"]),
                         "delay_p50_ms": round(statistics.median(result["delays_ms"]), 1),
                         "delay_p99_ms": round(percentile(result["delays_ms"], 99), 1)})
        steady = 2000 if quick else 10000
        result = _run_script(sim, "ethusd", "ETH/USD", steady, 0.001, 100, 50)
        rows.append({"what": "steady ~1000/s, batch 100 / 50 ms", "frames": steady,
                     "stored": result["stored"],
                     "frames_per_s": round(result["stored"] / result["seconds"]),
                     "delay_p50_ms": round(statistics.median(result["delays_ms"]), 1),
                     "delay_p99_ms": round(percentile(result["delays_ms"], 99), 1)})
    return {"name": "ingest", "runs": 1, "unit": "frames/s, ms", "rows": rows}
