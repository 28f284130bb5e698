"""What the benchmarks share: real services, the simulator, a worker process, and reporting."""
from __future__ import annotations

import os
import signal
import socket
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
    # shared state, rate-limit windows and fan-out in Redis, as the compose deployment has them
    "COLLECTOR_REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
}


def use_real_services() -> None:
    """Point this process (and the workers it starts) at RabbitMQ, Redis and PostgreSQL.
    Must run before anything reads celeryconfig."""
    os.environ.update(SERVICES)


class Worker:
    """A Celery worker subprocess (in a process group of its own), stopped on exit."""

    def __init__(self, queues: str = "celery,poll,publish,ingest", concurrency: int = 2,
                 pool: str = "prefork", env: dict | None = None, app: str = "proj"):
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-worker-{uuid.uuid4().hex[:6]}.log"
        self.node = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel", "WARNING",
               "-Q", queues, "--concurrency", str(concurrency), "--pool", pool,
               "-n", self.node, "--without-gossip", "--without-mingle"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def __enter__(self):
        try:
            return self._wait_until_ready()
        except BaseException:   # a worker left behind would take the next run's tasks
            self.__exit__()
            raise

    def _wait_until_ready(self):
        from proj.celery import app
        app.control.purge()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if app.control.ping(destination=[self.node], timeout=0.5):   # this one, no other
                return self
        raise RuntimeError("worker did not answer")

    def __exit__(self, *exc):
        """Warm shutdown of the whole group (the pool processes too), killed if it lingers."""
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


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


def figure(what: str, value: float, unit: str, floor: str, floor_value: float,
           target: str = "", met: bool | None = None, **extra) -> dict:
    """One row of a benchmark's table: a measured figure beside its floor from the same run.

    ratio = value / floor_value. `target` says what issue 6 asks of this figure, `met`
    whether this run reached it (None: no target). Extra keys (runs, p99 ...) go to --json only.
    """
    return {"figure": what, "value": _round(value), "unit": unit, "floor": floor,
            "floor_value": _round(floor_value),
            "ratio": round(value / floor_value, 2) if floor_value else None,
            "target": target, "met": met, **extra}


def _round(value: float) -> float:
    if value is None:
        return None
    magnitude = abs(value)
    return round(value, 0 if magnitude >= 1000 else 1 if magnitude >= 10 else 3)


def use_own_vhost(name: str) -> str:
    """Move this process (and the workers it starts after) to a RabbitMQ vhost of its own, so
    that benchmarks run at the same time neither purge nor consume each other's queues (as the
    tests do with theirs). Call after use_real_services(). Refuses to go on without one: the
    shared vhost is a running collector's, and a benchmark purges the queues it uses."""
    try:
        subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, timeout=60)
        done = subprocess.run(["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot make the RabbitMQ vhost {name} (rabbitmqctl: {exc})") from exc
    if done.returncode != 0:
        raise RuntimeError(f"cannot make the RabbitMQ vhost {name}: {done.stderr.decode()[-500:]}")
    from urllib.parse import urlsplit
    parts = urlsplit(SERVICES["COLLECTOR_BROKER_URL"])
    url = f"{parts.scheme}://{parts.netloc}/{name}"
    os.environ["COLLECTOR_BROKER_URL"] = url
    app = sys.modules["proj.celery"].app if "proj.celery" in sys.modules else None
    if app is not None and app.conf.broker_url != url:   # configured by an earlier benchmark
        # Drop the app's pools, not close them: kombu keeps one pool per broker URL and hands
        # the same one back when a later benchmark returns to that vhost.
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None
    return url
