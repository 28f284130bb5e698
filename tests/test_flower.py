"""Flower with the project's flowerconfig.py: basic auth from FLOWER_BASIC_AUTH on the UI and
/api, /metrics open for Prometheus, and no start on a public address without authentication."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from .conftest import ROOT

CREDENTIALS = ("test", "secret")
REFUSAL = "refusing to start"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flower_env(**extra: str) -> dict:
    """This process's environment (the tests' broker and result backend), minus any FLOWER_*
    setting of the caller's shell. Like the compose service, Flower gets no
    PROMETHEUS_MULTIPROC_DIR: its own metrics stay in its own process and out of the
    workers' shared metrics folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOWER_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


def flower_cmd(*args: str) -> list:
    return [sys.executable, "-m", "celery", "-A", "proj", "flower", *args]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def flower(worker, tmp_path):
    """Flower on a free loopback port with basic auth test:secret; yields its base URL."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(flower_cmd(f"--port={port}", "--address=127.0.0.1"), cwd=ROOT,
                                env=flower_env(FLOWER_BASIC_AUTH=":".join(CREDENTIALS)),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"Flower exited:\n{log_path.read_text()[-3000:]}"
            try:
                requests.get(f"{base}/healthcheck", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, \
                    f"Flower never answered:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.2)
        yield base
    finally:
        stop(proc)


@pytest.mark.services
def test_api_needs_the_credentials_and_metrics_does_not(worker, flower):
    workers_url = f"{flower}/api/workers"
    assert requests.get(workers_url, timeout=10).status_code == 401
    assert requests.get(workers_url, auth=("test", "wrong"), timeout=10).status_code == 401

    running = {name for reply in worker.control.ping(timeout=1) for name in reply}
    assert running, "the worker fixture's worker does not answer a ping"
    deadline = time.monotonic() + 30
    while True:
        answer = requests.get(workers_url, params={"refresh": 1}, auth=CREDENTIALS, timeout=30)
        assert answer.status_code == 200, answer.text
        listed = set(answer.json())
        if running & listed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert running & listed, f"Flower lists {sorted(listed)}, the running workers are {running}"

    metrics = requests.get(f"{flower}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text    # Flower's own metrics, not a login page


@pytest.mark.services
def test_flower_turns_task_events_on_and_lists_tasks(worker, flower):
    # Workers start with task events off (celeryconfig); Flower enables them while it runs.
    deadline = time.monotonic() + 60
    seen = {}
    while time.monotonic() < deadline:
        task_id = worker.send_task("collector.fetch", args=["nowhere", "ticker", "BTC/USD"]).id
        time.sleep(1.0)
        answer = requests.get(f"{flower}/api/tasks", auth=CREDENTIALS, timeout=30)
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        if task_id in seen:
            break
    assert task_id in seen, f"Flower lists {len(seen)} tasks, not {task_id}"
    assert seen[task_id]["name"] == "collector.fetch"


@pytest.mark.parametrize("args, env", [
    (["--address=0.0.0.0"], {}),
    ([], {"FLOWER_ADDRESS": "0.0.0.0"}),
    (["--address="], {}),                    # '' is every interface to Flower
], ids=["--address", "FLOWER_ADDRESS", "empty-address"])
def test_refuses_a_public_address_without_auth(args, env):
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(flower_cmd(f"--port={port}", *args), cwd=ROOT, env=flower_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    elapsed = time.monotonic() - started
    out, err = out.decode(), err.decode()
    assert proc.returncode != 0, out + err
    assert REFUSAL in err and "without authentication" in err, out + err
    assert "Visit me" not in out + err          # Flower's banner, printed once it has bound
    assert elapsed < 15, f"took {elapsed:.1f}s to refuse"
    with socket.socket() as s:                  # and the port was never taken
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
