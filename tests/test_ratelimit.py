"""The shared request budget: several processes polling one exchange stay within it together,
and a 429 pauses all of them."""
import os
import subprocess
import sys
import time

import pytest

from proj.collect import fetch_records

from .conftest import ROOT

TICKER = "/api/v2/ticker/btcusd/"
POLLER = """
import sys
from proj.collect import fetch_records
for _ in range(int(sys.argv[1])):
    result = fetch_records("bitstamp", "ticker", "BTC/USD", attempts=1, timeout=10)
    assert "err" not in result, result
"""


def most_in_any_window(times, seconds):
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + seconds) for i, start in enumerate(times))


@pytest.mark.parametrize("shared_by", ["redis", "files"])
def test_two_pollers_never_exceed_the_budget_together(fresh_sim, shared_by, tmp_path):
    env = dict(os.environ, COLLECTOR_BITSTAMP_REST_URL=fresh_sim.url,
               COLLECTOR_BITSTAMP_RATE_LIMIT="5/1", COLLECTOR_DATA_DIR=str(tmp_path))
    if shared_by == "files":
        env.pop("COLLECTOR_REDIS_URL")
    pollers = [subprocess.Popen([sys.executable, "-c", POLLER, "12"], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE) for _ in range(2)]
    for poller in pollers:
        _, err = poller.communicate(timeout=120)
        assert poller.returncode == 0, err.decode()[-2000:]
    times = fresh_sim.request_times(TICKER)
    assert len(times) == 24
    # 5 per second together (a few ms of slack for the trip from the limiter to the server)
    assert most_in_any_window(times, 0.95) <= 5


def test_a_429_pauses_every_process_of_that_exchange(fresh_sim, monkeypatch):
    monkeypatch.setenv("COLLECTOR_BITSTAMP_REST_URL", fresh_sim.url)
    fresh_sim.set_fault(TICKER, "status", status=429, retry_after=2, times=1)
    assert fetch_records("bitstamp", "ticker", "BTC/USD", attempts=1)["err"] == "rate_limited"
    other = subprocess.run([sys.executable, "-c", POLLER, "1"], cwd=ROOT, env=dict(os.environ),
                           capture_output=True, timeout=60)
    assert other.returncode == 0, other.stderr.decode()[-2000:]
    first, second = fresh_sim.request_times(TICKER)
    assert second - first >= 1.9   # the other process waited out the first one's Retry-After


def test_budget_wait_longer_than_the_attempt_is_rate_limited(fresh_sim, monkeypatch):
    monkeypatch.setenv("COLLECTOR_BITSTAMP_RATE_LIMIT", "1/30")
    assert "err" not in fetch_records("bitstamp", "ticker", "BTC/USD", base_url=fresh_sim.url,
                                      attempts=1)
    started = time.monotonic()
    result = fetch_records("bitstamp", "ticker", "BTC/USD", base_url=fresh_sim.url, attempts=1,
                           timeout=1)
    assert result["err"] == "rate_limited" and "budget" in result["detail"]
    assert time.monotonic() - started < 10   # answered, not waited out
    assert fresh_sim.request_count(TICKER) == 1


@pytest.mark.services
def test_redis_window_keeps_its_running_sum_exact():
    # The window keeps the sum of its weights beside its entries: entries leaving the window,
    # the exchange's reported usage, a sum lost and an entry list lost all count right.
    import uuid

    from proj import ratelimit
    window = ratelimit.RedisWindow("redis://127.0.0.1:6379/15")
    name = f"test_{uuid.uuid4().hex[:8]}"
    key = f"collector:ratelimit:{name}"

    def used():
        return int(window.redis.hget(f"{key}:sum", "used"))

    budget = (3, 0.5)   # 3 a half second
    try:
        assert [window.try_acquire(name, budget, 1) for _ in range(3)] == [0, 0, 0]
        assert 0 < window.try_acquire(name, budget, 1) <= 0.5
        assert used() == 3
        time.sleep(0.6)                                  # all three left the window
        assert window.try_acquire(name, budget, 2) == 0
        assert used() == 2
        window.top_up(name, budget, 3)                   # the exchange counted one more
        assert used() == 3
        assert window.try_acquire(name, budget, 1) > 0
        window.redis.delete(f"{key}:sum")                # no sum: counted from the entries
        assert window.try_acquire(name, budget, 1) > 0
        assert used() == 3
        window.redis.delete(key)                         # no entries (evicted, deleted by hand)
        assert window.try_acquire(name, budget, 1) == 0
        assert used() == 1
        window.top_up(name, budget, 10 ** 20)            # absurd usage reports: the whole budget
        assert used() == 3
        assert window.try_acquire(name, budget, 1) > 0
    finally:
        window.reset(name)
