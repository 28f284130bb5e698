"""One request budget per exchange, shared by every worker process (and machine).

A sliding window: in any `seconds`-long window at most `weight` units of request weight go
to the exchange, however many workers poll it. A 429 (or the exchange's own "too many
requests") pauses every worker of that exchange until its Retry-After, not only the one that
got it. And when the exchange reports the weight it has counted (Binance's
X-MBX-USED-WEIGHT-1M), the window is topped up to that figure, so requests that this
collector did not make (another program on the same IP) are budgeted too.

Redis (COLLECTOR_REDIS_URL) holds the window for a fleet; without it, a file under the data
folder, locked with flock, holds it for the processes of one machine.
The budget is the adapter's `rate_limit`, or COLLECTOR_<EXCHANGE>_RATE_LIMIT="WEIGHT/SECONDS".
"""
from __future__ import annotations

import fcntl
import os
import time
import uuid
from contextlib import contextmanager

import orjson

from . import settings
from .records import CollectorError

# The window: a ZSET of the requests made (member "id:weight", score = time), beside a hash of
# the sum of their weights and their number, so that a request costs the entries that left the
# window, not a walk over all it holds (with 5,000 held, a walk took ~5 ms of Redis time a
# request). When the number held is not the ZSET's own count (the hash or the ZSET evicted or
# deleted alone, an older release's workers writing the ZSET only), the sum is counted afresh.
# KEYS[1] the ZSET, KEYS[2] the pause-until key, KEYS[3] the hash. ARGV[1] now, ARGV[2] span.
# After the prelude, `used` is the weight of what the window holds at `now`.
_PRUNE = """
local now, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local function weight_of(member) return tonumber(string.match(member, ':(%d+)$')) end
local cutoff = now - span
local sums = redis.call('HMGET', KEYS[3], 'used', 'held')
local used, held = tonumber(sums[1]), tonumber(sums[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff) end
if used and held then
  for i = 1, #gone do used = used - weight_of(gone[i]) end
  held = held - #gone
end
if not used or not held or held ~= redis.call('ZCARD', KEYS[1]) or used < 0 then
  used, held = 0, 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    used, held = used + weight_of(member), held + 1
  end
end
local function keep(total, count)
  redis.call('HSET', KEYS[3], 'used', total, 'held', count)
  redis.call('EXPIRE', KEYS[1], math.ceil(span) + 1)
  redis.call('EXPIRE', KEYS[3], math.ceil(span) + 1)
end
"""

# ARGV[3] budget, ARGV[4] weight, ARGV[5] id. Returns seconds to wait (0: granted).
_ACQUIRE = _PRUNE + """
local budget, weight = tonumber(ARGV[3]), tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then keep(used, held) return tostring(paused - now) end
if used + weight <= budget then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. weight)
  keep(used + weight, held + 1)
  return '0'
end
keep(used, held)
-- wait until enough of the oldest entries have left the window (only when over budget)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local freed = 0
for i = 1, #entries, 2 do
  freed = freed + weight_of(entries[i])
  if used - freed + weight <= budget then
    return tostring(tonumber(entries[i + 1]) + span - now)
  end
end
return tostring(span)
"""

# ARGV[3] the weight the exchange says was used, ARGV[4] id: count what this window missed.
_TOP_UP = _PRUNE + """
local reported = tonumber(ARGV[3])
if reported > used then
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. string.format('%d', reported - used))
  used, held = reported, held + 1
end
keep(used, held)
return used
"""


def budget_for(adapter) -> tuple[float, float] | None:
    """(weight, seconds), from the environment override or the adapter."""
    override = os.environ.get(f"COLLECTOR_{adapter.name.upper()}_RATE_LIMIT", "").strip()
    if override:
        weight, _, seconds = override.partition("/")
        return float(weight), float(seconds or 1)
    return adapter.rate_limit


class RedisWindow:
    def __init__(self, url: str):
        import redis
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.acquire_script = self.redis.register_script(_ACQUIRE)
        self.top_up_script = self.redis.register_script(_TOP_UP)

    @staticmethod
    def _keys(name: str) -> list[str]:
        key = f"collector:ratelimit:{name}"
        return [key, f"{key}:pause", f"{key}:sum"]

    def try_acquire(self, name: str, budget: tuple, weight: int) -> float:
        wait = self.acquire_script(keys=self._keys(name),
                                   args=[time.time(), budget[1], budget[0], weight, uuid.uuid4().hex[:12]])
        return float(wait)

    def pause(self, name: str, seconds: float) -> None:
        until = time.time() + seconds
        key = f"collector:ratelimit:{name}:pause"
        current = float(self.redis.get(key) or 0)
        if until > current:
            self.redis.set(key, until, ex=max(1, int(seconds) + 1))

    def paused_for(self, name: str) -> float:
        return max(0.0, float(self.redis.get(f"collector:ratelimit:{name}:pause") or 0) - time.time())

    def reset(self, name: str) -> None:
        self.redis.delete(*self._keys(name))

    def top_up(self, name: str, budget: tuple, used: int) -> None:
        """Count the weight the exchange says was used that this window does not know of."""
        reported = min(int(used), int(budget[0]))   # beyond the budget it means "all of it"
        self.top_up_script(keys=self._keys(name),
                           args=[time.time(), budget[1], reported, uuid.uuid4().hex[:12]])


class FileWindow:
    """The same window in a JSON file per exchange, under flock: one machine's processes."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self, name: str):
        with open(self.folder / f"{name}.json", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            raw = f.read()
            state = orjson.loads(raw) if raw else {"entries": [], "paused": 0.0}
            yield state
            f.seek(0)
            f.truncate()
            f.write(orjson.dumps(state))

    def try_acquire(self, name: str, budget: tuple, weight: int) -> float:
        now = time.time()
        with self._locked(name) as state:
            if state["paused"] > now:
                return state["paused"] - now
            entries = [e for e in state["entries"] if e[0] > now - budget[1]]
            used = sum(w for _, w in entries)
            state["entries"] = entries
            if used + weight <= budget[0]:
                entries.append([now, weight])
                return 0.0
            freed = 0
            for at, w in entries:
                freed += w
                if used - freed + weight <= budget[0]:
                    return at + budget[1] - now
            return budget[1]

    def pause(self, name: str, seconds: float) -> None:
        with self._locked(name) as state:
            state["paused"] = max(state["paused"], time.time() + seconds)

    def paused_for(self, name: str) -> float:
        with self._locked(name) as state:
            return max(0.0, state["paused"] - time.time())

    def reset(self, name: str) -> None:
        with self._locked(name) as state:
            state.update(entries=[], paused=0.0)

    def top_up(self, name: str, budget: tuple, used: int) -> None:
        now = time.time()
        with self._locked(name) as state:
            state["entries"] = [e for e in state["entries"] if e[0] > now - budget[1]]
            known = sum(w for _, w in state["entries"])
            if used > known:
                state["entries"].append([now, used - known])


_window = None


def _shared_window():
    global _window
    if _window is None or _window[0] != os.getpid():
        url = settings.redis_url()
        window = RedisWindow(url) if url else FileWindow(settings.data_dir() / "ratelimit")
        _window = (os.getpid(), window)
    return _window[1]


def acquire(adapter, weight: int, max_wait: float) -> None:
    """Block until `weight` fits in the exchange's budget; rate_limited if that would take
    longer than `max_wait` seconds (the caller's retry, with backoff, comes back later)."""
    budget = budget_for(adapter)
    window = _shared_window()
    waited = 0.0
    while True:
        wait = (window.try_acquire(adapter.name, budget, weight) if budget is not None
                else window.paused_for(adapter.name))   # no budget known: honour pauses only
        if wait <= 0:
            return
        if waited + wait > max_wait:
            raise CollectorError("rate_limited", f"{adapter.name}: request budget of "
                                 f"{budget[0]:g} per {budget[1]:g}s used up here",
                                 retry_after=wait)
        time.sleep(wait)
        waited += wait


def pause(adapter, seconds: float) -> None:
    """The exchange said "too many requests": every worker waits `seconds` before the next."""
    _shared_window().pause(adapter.name, seconds)


def observe_used(adapter, used: int) -> None:
    budget = budget_for(adapter)
    if budget is not None:
        _shared_window().top_up(adapter.name, budget, used)


def reset(name: str) -> None:
    """Forget an exchange's window and pause (tests; an operator after a ban is lifted)."""
    _shared_window().reset(name)
