"""memory: (a) the peak RSS (VmHWM) of one streamer process holding 50 symbols' trades, beside
a bare process that only imports what a streamer imports; (b) the RSS of a worker's pool
process after 1M trade frames through collector.ingest, beside the same process after 100k,
measured in one run.

(a) The streamer runs as the supervisor runs it: a `spawn` child process whose target is
streamers.supervisor.run_streamer(config), connected to the simulator's Binance websocket
(`@trade` streams of 50 symbols, in the URL: the simulator's BinanceWs takes any list of pairs,
unlike Bitstamp's, which numbers tids per pair and stops at 16), for `seconds`, sending its
batches to the `ingest` queue (nobody drains it; it is purged afterwards). The floor is a
`spawn` child that imports the same modules (and those the streamer imports on first use:
the Binance adapter, the AMQP transport, redis) and does nothing else.

(b) A worker with concurrency 1 (one pool process does it all) and no --max-tasks-per-child
takes batches of 100 Bitstamp live_trades frames ([received_ms, text] pairs, unique trade ids,
so every row is a real insert) sent with app.send_task straight to `ingest`, storing into a
throwaway PostgreSQL schema (search_path in the database URL), dropped afterwards. The
backlog in RabbitMQ is kept small; progress is the row count. VmRSS of the pool process is read
after 100k frames (the floor) and after 1M (the figure); quick mode: 10k and 100k.
"""
from __future__ import annotations

import multiprocessing
import os
import time

from .harness import SERVICES, Worker, figure, use_own_vhost, use_real_services

REDIS_URL = "redis://127.0.0.1:6379/10"   # this benchmark's shared state and fan-out
SYMBOLS = 50
SCHEMA = "bench_memory"
BATCH = 100
BACKLOG = 40                              # batches at most waiting in RabbitMQ
PAIRS = ("btcusd", "ethusd", "btceur", "ethbtc")
# A Bitstamp live_trades frame (../shared/fixtures/bitstamp/ws_live_trades_trade_ethusd.json),
# with the id and times filled in
FRAME = ('{"data":{"id":%d,"timestamp":"%d","amount":0.0792,"amount_str":"0.07920000",'
         '"price":3805.44,"price_str":"3805.44","type":%d,"microtimestamp":"%d",'
         '"buy_order_id":%d,"sell_order_id":%d},"channel":"live_trades_%s","event":"trade"}')


# ---- /proc -------------------------------------------------------------------------------------
def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


# ---- (a) the streamer --------------------------------------------------------------------------
def _streamer_imports() -> None:
    """The floor's process: what a streamer process imports, then nothing."""
    import amqp  # noqa: F401  (the AMQP client, imported on the first send)
    import kombu.transport.pyamqp  # noqa: F401
    import redis  # noqa: F401  (the shared state)
    import websocket  # noqa: F401

    import proj.celery  # noqa: F401
    import proj.logs  # noqa: F401
    import proj.state  # noqa: F401
    import streamers.connection  # noqa: F401
    import streamers.supervisor  # noqa: F401
    from proj.exchanges import get_exchange
    get_exchange("binance")
    time.sleep(3600)


def _fifty_pairs():
    from dataclasses import replace

    from proj.sim.binance import PAIRS as BINANCE_PAIRS
    usdt = [p for p in BINANCE_PAIRS if p.url_symbol.endswith("USDT")]
    return [replace(usdt[i % len(usdt)], url_symbol=f"S{i:02d}USDT", name=f"S{i:02d}/USDT")
            for i in range(SYMBOLS)]


def _peak_rss(process, settle: float) -> float:
    """VmHWM (MB) of a started process, once it has run for `settle` seconds."""
    time.sleep(settle)
    peak = _status_mb(process.pid, "VmHWM")
    process.terminate()
    process.join(15)
    if process.is_alive():
        process.kill()
        process.join(5)
    return peak


def _streamer_memory(app, seconds: float) -> dict:
    from proj.sim import Simulator
    from proj.sim.binance_ws import BinanceWs
    from proj.state import open_state
    from streamers.supervisor import run_streamer

    spawn = multiprocessing.get_context("spawn")   # as the supervisor starts streamers
    floor = spawn.Process(target=_streamer_imports, daemon=True)
    floor.start()
    floor_mb = _peak_rss(floor, 3.0)

    feed = BinanceWs(pairs=_fifty_pairs(), trade_interval=0.1)   # ~10 trades/s a symbol
    with Simulator(port=0, exchanges=[], ws_exchanges=[feed]).start() as sim:
        config = {"name": "bench-memory", "exchange": "binance", "types": ["trades"],
                  "symbols": [f"S{i:02d}/USDT" for i in range(SYMBOLS)],
                  "ws_url": sim.ws_url_for("binance"), "batch_size": 100, "batch_ms": 50}
        streamer = spawn.Process(target=run_streamer, args=(config,), daemon=True)
        streamer.start()
        peak_mb = _peak_rss(streamer, seconds)
    stats = open_state().get("streamer:bench-memory") or {}
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("ingest")
    return {"peak_mb": peak_mb, "floor_mb": floor_mb, "seconds": seconds,
            "frames_received": stats.get("messages_received"),
            "frames_sent": stats.get("messages_processed"), "errors": stats.get("errors")}


# ---- (b) the worker ----------------------------------------------------------------------------
def _frames(first_id: int, count: int) -> list:
    """`count` live_trades frames with ids first_id..., received now."""
    now_us = time.time_ns() // 1000
    received = now_us // 1000
    return [[received, FRAME % (i, now_us // 1_000_000, i & 1, now_us + i - first_id,
                                i + 10 ** 15, i + 10 ** 15 + 1, PAIRS[i % len(PAIRS)])]
            for i in range(first_id, first_id + count)]


def _queue_depth(app, queue: str) -> int:
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue=queue, passive=True).message_count


def _feed(app, db, first_id: int, frames: int) -> None:
    """Send `frames` frames in batches, keeping the RabbitMQ backlog small; return once all of
    them are rows."""
    cursor = db.cursor()
    cursor.execute("SELECT count(*) FROM trades")
    target = cursor.fetchone()[0] + frames
    with app.producer_or_acquire() as producer:
        for n, start in enumerate(range(first_id, first_id + frames, BATCH)):
            if n % (BACKLOG // 2) == 0:   # asking RabbitMQ costs a round trip: now and then
                while _queue_depth(app, "ingest") > BACKLOG // 2:
                    time.sleep(0.02)
            app.send_task("collector.ingest", args=["bitstamp", _frames(start, BATCH)],
                          producer=producer)
    deadline = time.monotonic() + 120
    while True:
        cursor.execute("SELECT count(*) FROM trades")
        if cursor.fetchone()[0] >= target:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not store every frame within 2 minutes")
        time.sleep(0.2)


def _worker_memory(app, first: int, second: int) -> dict:
    import psycopg2

    base = SERVICES["COLLECTOR_DATABASE_URL"]
    admin = psycopg2.connect(base)
    admin.autocommit = True
    admin.cursor().execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    database_url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{SCHEMA}"
    try:
        from proj.store import open_store
        open_store(database_url)   # the tables, in the schema: the count below needs them
        env = {"COLLECTOR_DATABASE_URL": database_url, "COLLECTOR_REDIS_URL": REDIS_URL}
        with Worker(queues="ingest", concurrency=1, env=env) as worker:
            db = psycopg2.connect(database_url)
            db.autocommit = True
            _feed(app, db, 1, BATCH)   # the pool process is up and the tables exist
            child = _children(worker.proc.pid)[0]
            started, samples, sent = time.monotonic(), [], BATCH
            for checkpoint in [first] + [first + (second - first) * k // 4 for k in range(1, 5)]:
                _feed(app, db, 1 + sent, checkpoint - sent)
                sent = checkpoint
                samples.append((sent, round(_status_mb(child, "VmRSS"), 2)))
            elapsed = time.monotonic() - started
            if _children(worker.proc.pid) != [child]:
                raise RuntimeError("the pool process was replaced: its RSS says nothing")
            db.close()
    finally:
        admin.cursor().execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        admin.close()
    return {"samples": samples, "frames_per_s": round((second - BATCH) / elapsed)}


def run(quick: bool = False) -> dict:
    use_real_services()
    use_own_vhost("bench_memory")
    os.environ["COLLECTOR_REDIS_URL"] = REDIS_URL   # as deployed: state and fan-out in Redis
    from proj.celery import app

    streamer = _streamer_memory(app, 4.0 if quick else 10.0)
    first, second = (10_000, 100_000) if quick else (100_000, 1_000_000)
    worker = _worker_memory(app, first, second)
    rss = dict(worker["samples"])
    return {"name": "memory", "runs": 1, "unit": "MB", "rows": [
        figure(f"streamer peak RSS, {SYMBOLS} symbols' trades, {streamer['seconds']:g} s",
               streamer["peak_mb"], "MB", "bare process with the streamer's imports",
               streamer["floor_mb"], target="< 80 MB", met=streamer["peak_mb"] < 80,
               frames_received=streamer["frames_received"], frames_sent=streamer["frames_sent"],
               errors=streamer["errors"]),
        figure(f"worker pool process RSS after {second:,} frames", rss[second], "MB",
               f"same process after {first:,} frames", rss[first], target="< 1.10×",
               met=rss[second] < 1.10 * rss[first], rss_mb_by_frames=worker["samples"],
               frames_per_s=worker["frames_per_s"]),
    ], "notes": [
        f"streamer: {streamer['frames_received']} trade frames received in {streamer['seconds']:g} s "
        f"over {SYMBOLS} symbols, {streamer['frames_sent']} handed to the ingest queue",
        "worker pool process VmRSS (MB) by frames stored: "
        + ", ".join(f"{frames:,} → {mb:g}" for frames, mb in worker["samples"])
        + f"; {worker['frames_per_s']:,} frames/s, concurrency 1",
    ]}
