"""Shared fixtures: the exchange simulator, the real services, and a real Celery worker.

The tests that cross a broker, a result backend or a database use the real ones on this
machine: RabbitMQ (broker), Redis (results), PostgreSQL (store). This process is configured
for them before Celery reads its configuration, so `task.delay()` here goes through RabbitMQ.
Each test session gets its own PostgreSQL schema, and the tests use their own RabbitMQ
virtual host, so a collector running on the same machine neither sees nor loses their tasks.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION = uuid.uuid4().hex[:8]

PG_BASE = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = f"collector_test_{SESSION}"
PG_URL = f"{PG_BASE}?options=-csearch_path%3D{PG_SCHEMA}"
TEST_VHOST = "collector_test"


def _test_vhost_url() -> str:
    """RabbitMQ's own vhost for the tests (created if missing), or the default one if we may not."""
    try:
        subprocess.run(["rabbitmqctl", "add_vhost", TEST_VHOST], capture_output=True, timeout=60)
        done = subprocess.run(["rabbitmqctl", "set_permissions", "-p", TEST_VHOST, "guest",
                               ".*", ".*", ".*"], capture_output=True, timeout=60)
        if done.returncode == 0:
            return f"amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "amqp://guest:guest@127.0.0.1:5672//"


RABBIT_URL = os.environ.get("TEST_BROKER_URL") or _test_vhost_url()
REDIS_URL = os.environ.get("TEST_RESULT_BACKEND", "redis://127.0.0.1:6379/15")

# Before anything imports celeryconfig: this process talks to the real services.
os.environ.update({
    "COLLECTOR_BROKER_URL": RABBIT_URL,
    "COLLECTOR_RESULT_BACKEND": REDIS_URL,
    "COLLECTOR_DATABASE_URL": PG_URL,
    "COLLECTOR_CONFIG": str(ROOT / "tests" / "no-polls.toml"),   # no beat entries in tests
    "COLLECTOR_BACKOFF_BASE": "0.05",
    "COLLECTOR_REDIS_URL": "redis://127.0.0.1:6379/15",   # fan-out, rate limits, shared state
})
os.environ.setdefault("COLLECTOR_DATA_DIR", tempfile.mkdtemp(prefix="collector-tests-"))
# every process of the test session (workers, exporter) counts into the same place
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                      os.path.join(os.environ["COLLECTOR_DATA_DIR"], "metrics"))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


@pytest.fixture(scope="session")
def sim():
    from proj.sim import Simulator
    simulator = Simulator(host="127.0.0.1", port=0).start()
    os.environ["COLLECTOR_BITSTAMP_REST_URL"] = simulator.url
    yield simulator
    simulator.stop()


@pytest.fixture
def fresh_sim(sim):
    from proj import ratelimit
    from proj.exchanges import exchange_names
    sim.clear_faults()
    sim.reset_counts()
    for name in exchange_names():   # no pause or spent budget left over from another test
        ratelimit.reset(name)
    yield sim
    sim.clear_faults()


@pytest.fixture(scope="session")
def pg_schema():
    conn = psycopg2.connect(PG_BASE)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    yield PG_URL
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    conn.close()


def start_worker(env: dict, log_path: Path, queues: str = "celery,poll,publish,ingest",
                 concurrency: int = 2) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celery", "-A", "proj", "worker", "--loglevel", "INFO",
           "-Q", queues, "--concurrency", str(concurrency), "-n", f"test-{uuid.uuid4().hex[:6]}@%h",
           "--without-gossip", "--without-mingle"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_path.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_worker(app, proc: subprocess.Popen, log_path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError(f"worker never answered a ping:\n{log_path.read_text()[-3000:]}")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def worker(sim, pg_schema, tmp_path_factory):
    """A real worker process on RabbitMQ + Redis + PostgreSQL, pointed at the simulator."""
    from proj.celery import app
    app.control.purge()   # leftovers of an earlier, interrupted run
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = dict(os.environ, COLLECTOR_DATA_DIR=str(log_path.parent))
    proc = start_worker(env, log_path)
    try:
        wait_for_worker(app, proc, log_path)
        yield app
    finally:
        stop_worker(proc)


@pytest.fixture
def store(pg_schema):
    """The PostgreSQL store the worker writes to, emptied for this test."""
    from proj.store import open_store
    store = open_store(pg_schema)
    store.truncate()
    yield store
    store.close()
