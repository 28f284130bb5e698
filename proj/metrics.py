"""Prometheus metrics: counters from every worker process, added up; freshness from the state.

Worker processes count into prometheus_client's multiprocess files (PROMETHEUS_MULTIPROC_DIR,
by default var/metrics), so a prefork pool's children add up instead of each reporting its
own. One exporter (`python -m proj metrics`) serves them, together with what it reads from the
shared state at scrape time: how old each feed's newest data is, the streamers' uptime and the
supervisor's restarts.
"""
from __future__ import annotations

import glob
import os
import time

from . import settings

# prometheus_client reads this when it is imported: set it first, in every process
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.data_dir() / "metrics"))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

MESSAGES = Counter("collector_messages", "Records validated and published",
                   ["exchange", "symbol", "type"])
ERRORS = Counter("collector_errors", "Failures by error code", ["exchange", "error_type"])
INGEST_DELAY = Histogram("collector_ingest_delay_seconds",
                         "From a message's receive time to its stored row",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

FRESH_PREFIX = "fresh:"


def count_published(records: list[dict], now_ms: int) -> None:
    """After a commit: one message per record, and its receive-to-row delay."""
    per_feed: dict[tuple, int] = {}
    for record in records:
        feed = (record["exchange"], record["symbol"], record["type"])
        per_feed[feed] = per_feed.get(feed, 0) + 1
        INGEST_DELAY.observe(max(0, now_ms - record["received"]) / 1000)
    for feed, count in per_feed.items():   # one labels() lookup and file write a feed, not a record
        MESSAGES.labels(*feed).inc(count)


def count_error(exchange: str, code: str, n: int = 1) -> None:
    ERRORS.labels(exchange or "", code).inc(n)


# A feed's freshness is written at most this often by one process: health checks count in
# seconds, and a stream's worker would otherwise write it for every batch.
FRESH_WRITE_INTERVAL = 1.0
_fresh_written: dict[str, float] = {}   # key -> monotonic time of this process's last write


def note_fresh_data(state, records: list[dict]) -> None:
    """The newest receive time per exchange × type × symbol, where every process can read it."""
    newest = {}
    for record in records:
        key = f"{FRESH_PREFIX}{record['exchange']}:{record['type']}:{record['symbol']}"
        newest[key] = max(newest.get(key, 0), record["received"])
    now = time.monotonic()
    for key, received in newest.items():
        if now - _fresh_written.get(key, -FRESH_WRITE_INTERVAL) >= FRESH_WRITE_INTERVAL:
            state.put(key, {"received": received, "written": time.time()})
            _fresh_written[key] = now


class StateCollector:
    """Gauges computed at scrape time from the shared state."""

    def __init__(self, state):
        self.state = state

    def collect(self):
        now = time.time()
        age = GaugeMetricFamily("collector_data_age_seconds",
                                "Seconds since the newest data of a feed was received",
                                labels=["exchange", "symbol", "type"])
        for key, value in self.state.get_prefix(FRESH_PREFIX).items():
            exchange, kind, symbol = key[len(FRESH_PREFIX):].split(":", 2)
            age.add_metric([exchange, symbol, kind], max(0.0, now - value["received"] / 1000))
        yield age
        from streamers.supervisor import STATUS_KEY
        status = self.state.get(STATUS_KEY) or {}
        uptime = GaugeMetricFamily("collector_uptime_seconds",
                                   "Seconds the exchange's streamer processes have been up",
                                   labels=["exchange"])
        per_exchange, restarts = {}, 0
        for collector in (status.get("collectors") or {}).values():
            stats = collector["statistics"]
            per_exchange[collector["exchange"]] = max(per_exchange.get(collector["exchange"], 0.0),
                                                      stats["uptime_seconds"])
            restarts += stats["restarts"]
        for exchange, seconds in sorted(per_exchange.items()):
            uptime.add_metric([exchange], seconds)
        yield uptime
        total = CounterMetricFamily("collector_restarts", "Streamer restarts by the supervisor")
        total.add_metric([], restarts)
        yield total


class TreeCollector(MultiProcessCollector):
    """MultiProcessCollector over the folder and its subfolders: in a deployment each worker
    container counts into its own subfolder of one shared volume (process ids repeat between
    containers), and all of them add up here."""

    def collect(self):
        files = glob.glob(os.path.join(self._path, "**", "*.db"), recursive=True)
        return self.merge(files, accumulate=True)


def registry(state) -> CollectorRegistry:
    """What the exporter serves: every process's counters, added up, and the state's gauges."""
    registry = CollectorRegistry()
    TreeCollector(registry)
    registry.register(StateCollector(state))
    return registry


def serve(port: int, host: str = "127.0.0.1") -> None:
    from prometheus_client import start_http_server

    from .state import open_state
    start_http_server(port, addr=host, registry=registry(open_state()))
