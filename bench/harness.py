"""What the benchmarks share: real services, the simulator, a worker process, and reporting."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {
    "COLLECTOR_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "COLLECTOR_RESULT_BACKEND": os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/14"),
    "COLLECTOR_DATABASE_URL": os.environ.get("BENCH_DATABASE_URL",
                                             "postgresql://postgres@127.0.0.1:5432/test"),
    "COLLECTOR_CONFIG": str(ROOT / "tests" / "no-polls.toml"),
}


def use_real_services() -> None:
    """Point this process (and the workers it starts) at RabbitMQ, Redis and PostgreSQL.
    Must run before anything reads celeryconfig."""
    os.environ.update(SERVICES)


class Worker:
    """A Celery worker subprocess, stopped on exit."""

    def __init__(self, queues: str = "celery,poll,publish,ingest", concurrency: int = 2,
                 pool: str = "prefork", env: dict | None = None):
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-worker-{uuid.uuid4().hex[:6]}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "proj", "worker", "--loglevel", "WARNING",
               "-Q", queues, "--concurrency", str(concurrency), "--pool", pool,
               "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def __enter__(self):
        from proj.celery import app
        app.control.purge()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if app.control.ping(timeout=0.5):
                return self
        raise RuntimeError("worker did not answer")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def time_calls(call, runs: int) -> list[float]:
    """Seconds per call, `runs` times (after one warm-up call)."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
