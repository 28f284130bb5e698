"""ingest: the simulator's websocket blasting N Bitstamp frames (trades, and separately top-100
order books) -> a streamer process -> RabbitMQ -> worker (validate, normalize) -> PostgreSQL, at
batch sizes 1, 10, 100 and 500; frames per second from the first frame sent to the last one
committed. Floor, in the same run and interleaved with it: the same streamer sending the same
batches to a no-op Celery task (bench.floor.noop_ingest) on the same worker.

Everything runs on this machine: simulator, streamer, RabbitMQ, worker (2 processes) and
PostgreSQL share its cores, as they would on a one-box deployment. The streamer's batches
leave at `batch_size` frames or 50 ms (the product's time bound is 10 ms; at the blast's rate a
batch of 500 would not fill in 10 ms, and this benchmark is about batch size). Books received in
the same millisecond share a row (the book key is exchange, symbol, receive time): for books a
frame "committed" is a record published after the commit; --json has the rows each run added.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager

import psycopg2
import redis

from .harness import Worker, figure, use_own_vhost, use_real_services

REDIS_URL = "redis://127.0.0.1:6379/12"
SCHEMA = "bench_ingest"
DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{SCHEMA}"
PLAIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
INGEST_TASK = "collector.ingest"
FLOOR_TASK = "bench.noop_ingest"
BATCH_SIZES = (1, 10, 100, 500)
TRADES_TARGET = 30_000   # frames/s into PostgreSQL (issue 6)


def prepare() -> None:
    """Real services, a schema of our own, metrics files of our own; before any import of
    the project's settings and before the worker starts."""
    use_real_services()
    use_own_vhost("bench_ingest")
    os.environ["COLLECTOR_DATABASE_URL"] = DATABASE_URL
    os.environ["COLLECTOR_REDIS_URL"] = REDIS_URL
    os.environ["BENCH_INGEST_REDIS_URL"] = REDIS_URL
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
    with psycopg2.connect(PLAIN_DATABASE_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    connection.close()
    from proj.store import open_store
    open_store(DATABASE_URL)   # the tables, before a worker races to make them


def drop_schema() -> None:
    with psycopg2.connect(PLAIN_DATABASE_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    connection.close()


def floor_worker() -> Worker:
    """One worker (2 processes) serving the ingest queue with both the real and the no-op task."""
    return Worker(queues="ingest", concurrency=2, app="bench.floor")


# ---- the streamer, in its own process as the supervisor runs it ------------------------------

def _run_streamer(config: dict) -> None:
    from streamers.connection import Streamer
    from streamers.supervisor import batch_sender

    send = batch_sender("bitstamp", config["task"], queue="ingest")   # as the supervisor's streamers send

    streamer = Streamer("bitstamp", [config["symbol"]], [config["kind"]], send,
                        ws_url=config["ws_url"], max_silence=3600,
                        batch_size=config["batch_size"], batch_ms=config["batch_ms"])
    signal.signal(signal.SIGTERM, lambda *_: streamer.stop())
    streamer.run()


@contextmanager
def streamer_process(sim, task: str, kind: str, pair: str, symbol: str, batch_size: int,
                     batch_ms: float = 50):
    """A streamer process subscribed to one channel, sending to `task`; stopped on exit."""
    channel = f"{'live_trades' if kind == 'trades' else 'order_book'}_{pair}"
    config = {"task": task, "kind": "trades" if kind == "trades" else "order_book", "symbol": symbol, "ws_url": sim.ws_url_for("bitstamp"),
              "batch_size": batch_size, "batch_ms": batch_ms}
    process = multiprocessing.get_context("spawn").Process(target=_run_streamer, args=(config,),
                                                           daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 30
        while not sim.ws.subscribers("bitstamp", channel):
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError(f"streamer did not subscribe to {channel}")
            time.sleep(0.02)
        yield process
    finally:
        process.terminate()    # SIGTERM: the streamer drains its batcher and stops
        process.join(15)
        if process.is_alive():
            process.kill()


# ---- counting what arrived ------------------------------------------------------------------

class Counters:
    """Frames the floor task got (a Redis counter) and records the collector committed
    (collector_messages_total from the workers' metrics files: counted after the commit)."""

    def __init__(self):
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.delete("bench:floor:frames", "bench:floor:delays")

    def floor_frames(self) -> int:
        return int(self.redis.get("bench:floor:frames") or 0)

    def floor_delays(self) -> list[float]:
        return [float(value) for value in self.redis.lrange("bench:floor:delays", 0, -1)]

    def clear_floor_delays(self) -> None:
        self.redis.delete("bench:floor:delays")

    @staticmethod
    def committed(record_type: str) -> int:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return int(sum(sample.value for metric in registry.collect()
                       if metric.name == "collector_messages"
                       for sample in metric.samples
                       if sample.name == "collector_messages_total"
                       and sample.labels.get("type") == record_type))

    def count(self, task: str, record_type: str) -> int:
        return self.floor_frames() if task == FLOOR_TASK else self.committed(record_type)


def stored_rows(kind: str, symbol: str) -> int:
    """Rows of the symbol in the benchmark's trades or order_books table."""
    table = "trades" if kind == "trades" else "order_books"
    with psycopg2.connect(PLAIN_DATABASE_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {SCHEMA}.{table} WHERE symbol = %s", (symbol,))
        rows = cursor.fetchone()[0]
    connection.close()
    return rows


def wait_until(count, target: int, seconds: float) -> float | None:
    """monotonic time at which count() reached target, or None after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if count() >= target:
            return time.monotonic()
        time.sleep(0.01)
    return None


# ---- where the CPU goes ----------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS   # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _pids(*pgrep_args: str) -> list[int]:
    done = subprocess.run(["pgrep", *pgrep_args], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]


class CpuMeter:
    """CPU seconds used by each part of the pipeline between start() and stop(), read from
    /proc: this process (the simulator), the streamer, the worker and its pool, RabbitMQ,
    PostgreSQL and Redis. Processes started in between (a database connection) count whole."""

    def __init__(self, streamer_pid: int, worker_pid: int):
        self.groups = {
            "simulator": lambda: [os.getpid()],
            "streamer": lambda: [streamer_pid],
            "worker": lambda: [worker_pid, *_pids("-P", str(worker_pid))],
            "rabbitmq": lambda: _pids("-x", "beam.smp"),
            "postgresql": lambda: _pids("-x", "postgres"),
            "redis": lambda: _pids("-x", "redis-server"),
        }
        self.before = {}

    def _read(self) -> dict[str, dict[int, float]]:
        return {group: {pid: _cpu_seconds(pid) for pid in pids()} for group, pids in self.groups.items()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {group: sum(used - self.before[group].get(pid, 0.0) for pid, used in pids.items())
                for group, pids in after.items()}


def blast_rate(sim, counters: Counters, task: str, kind: str, n: int, batch_size: int,
               worker: Worker | None = None) -> tuple[float, dict[str, float], int | None]:
    """Frames per second of one blast of n frames through task, first sent to last counted
    (0 if they did not all arrive within the time allowed), the CPU µs per frame each part of
    the pipeline used (given the worker), and the rows it added to PostgreSQL (collector only:
    books received in the same millisecond share a row)."""
    pair, symbol = ("btcusd", "BTC/USD") if kind == "trades" else ("ethusd", "ETH/USD")
    record_type = "trade" if kind == "trades" else "order_book"
    with streamer_process(sim, task, kind, pair, symbol, batch_size) as process:
        time.sleep(0.3)   # the subscription's first frames (a book's snapshot) are through
        meter = CpuMeter(process.pid, worker.proc.pid) if worker else None
        if meter:
            meter.start()
        before = counters.count(task, record_type)
        rows_before = stored_rows(kind, symbol) if task == INGEST_TASK else None
        if kind == "trades":
            sim.ws_blast_trades(pair, n)
        else:
            sim.ws_blast_books(pair, n)
        started = sim.ws_exchange("bitstamp").blast_started   # frames are built before sending
        finished = wait_until(lambda: counters.count(task, record_type) - before, n,
                              seconds=max(60.0, n / 100))
        cpu = {group: round(seconds / n * 1e6, 1) for group, seconds in meter.stop().items()} if meter else {}
        rows = stored_rows(kind, symbol) - rows_before if rows_before is not None else None
    if finished is None:
        return 0.0, cpu, rows   # 0 frames/s: the run lost frames or timed out (a note says so)
    return n / (finished - started), cpu, rows


def run(quick: bool = False, kinds: tuple = ("trades", "books")) -> dict:
    prepare()
    from proj.sim import Simulator

    runs = 1 if quick else 3
    # batches of 500 several times over, even in a quick run
    frames = {"trades": 5_000 if quick else 20_000, "books": 2_500 if quick else 5_000}
    rows, notes = [], []
    try:
        with Simulator(port=0).start() as sim, floor_worker() as worker:
            ws = sim.ws_exchange("bitstamp")
            ws.trade_interval = None   # only the blasted frames
            ws.book_interval = None
            counters = Counters()
            for kind in kinds:
                for batch_size in BATCH_SIZES:
                    n = frames[kind] // (5 if batch_size == 1 else 1)   # a task a frame is slow
                    samples = {INGEST_TASK: [], FLOOR_TASK: []}
                    cpu, rows_stored = {}, []
                    for _ in range(runs):   # interleaved: drift in machine load hits both alike
                        for task in (FLOOR_TASK, INGEST_TASK):
                            rate, cpu[task], added = blast_rate(sim, counters, task, kind, n,
                                                                batch_size, worker)
                            samples[task].append(rate)
                            if added is not None:
                                rows_stored.append(added)
                    lost = sum(1 for task in samples for rate in samples[task] if rate == 0)
                    if lost:
                        notes.append(f"{kind}, batch {batch_size}: {lost} run(s) did not get all "
                                     f"{n} frames through in time (counted as 0 frames/s)")
                    if batch_size == 100:
                        notes += [cpu_note(kind, task, cpu[task]) for task in (FLOOR_TASK, INGEST_TASK)]
                    rate = statistics.median(samples[INGEST_TASK])
                    floor = statistics.median(samples[FLOOR_TASK])
                    half = rate >= 0.5 * floor
                    if kind == "trades":
                        target, met = "≥ 30,000/s and ≥ 0.5× floor", rate >= TRADES_TARGET and half
                    else:
                        target, met = "≥ 0.5× floor", half
                    rows.append(figure(f"{kind}, batch {batch_size}", rate, "frames/s",
                                       f"no-op task, batch {batch_size}", floor, target, met,
                                       frames=n, runs=runs,
                                       samples=[round(s) for s in samples[INGEST_TASK]],
                                       floor_samples=[round(s) for s in samples[FLOOR_TASK]],
                                       rows_stored=rows_stored,
                                       cpu_us_per_frame=cpu[INGEST_TASK],
                                       floor_cpu_us_per_frame=cpu[FLOOR_TASK]))
    finally:
        drop_schema()
    return {"name": "ingest", "runs": runs, "unit": "frames/s", "rows": rows, "notes": notes}


def cpu_note(kind: str, task: str, cpu: dict[str, float]) -> str:
    """One line: CPU µs per frame by part, and the rate two cores could carry at that cost."""
    # The simulator (this process: building and sending the frames) is the benchmark's, not
    # the collector's: the bound is what the rest would allow with both cores to itself.
    pipeline = sum(value for group, value in cpu.items() if group != "simulator")
    parts = ", ".join(f"{group} {value:g}" for group, value in cpu.items())
    bound = f"; at that cost 2 cores carry {2e6 / pipeline:,.0f} frames/s" if pipeline > 0 else ""
    return (f"CPU µs per frame, {kind}, batch 100, {task}: {parts} "
            f"(all but the simulator: {pipeline:.0f}{bound})")
