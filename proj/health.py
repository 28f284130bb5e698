"""Health: every collector's heartbeat and data age, judged in one place.

Polls record an outcome per run (`record_poll`); streamers report through the supervisor's
status; publishing records each feed's newest data (proj.metrics.note_fresh_data). The
beat-scheduled `collector.health_check` (`check_health`) reads all of it from the shared
state, marks what is silent past MAX_SILENCE_DURATION, erring past COLLECTOR_ERROR_THRESHOLD
errors in a row, or not running though it should; asks the supervisor to restart an unhealthy
streamer, with exponential backoff, at most MAX_RECONNECT_ATTEMPTS times in a row, after which
it asks the supervisor to mark it failed (it stays down and says so until enabled again).
"""
from __future__ import annotations

import logging
import time

from . import settings
from .config import load_polls, load_streams
from .metrics import FRESH_PREFIX

log = logging.getLogger("collector")
POLL_PREFIX = "poll:"
HEALTH_KEY = "health"
FIRST_SEEN_KEY = "health:first_seen"


def poll_name(exchange: str, kind: str, symbol: str) -> str:
    return f"poll {exchange} {kind} {symbol}"


def record_poll(state, exchange: str, kind: str, symbol: str, error: str | None = None) -> None:
    """One poll's outcome: its heartbeat, and its errors (in a row and by code)."""
    def count(entry):
        entry = entry or {"runs": 0, "errors": {}, "errors_in_a_row": 0}
        entry["runs"] += 1
        entry["last_run"] = time.time()
        if error:
            entry["errors"][error] = entry["errors"].get(error, 0) + 1
            entry["errors_in_a_row"] += 1
            entry["last_error"] = error
        else:
            entry["errors_in_a_row"] = 0
            entry["last_ok"] = time.time()
        return entry

    # atomic: two workers finishing polls of one feed together must both be counted
    state.update(f"{POLL_PREFIX}{exchange}:{kind}:{symbol}", count)


def poll_statuses(state, now: float | None = None) -> dict:
    """get_status()-like dictionaries for every poll of collectors.toml."""
    now = now or time.time()
    first_seen = state.get(FIRST_SEEN_KEY) or {}
    statuses = {}
    for poll in load_polls(settings.collectors_file()):
        exchange, kind, symbol = poll["exchange"], poll["type"], poll["symbol"]
        entry = state.get(f"{POLL_PREFIX}{exchange}:{kind}:{symbol}") or {}
        record_type = {"trades": "trade", "candles": "candle"}.get(kind, kind)
        fresh = state.get(f"{FRESH_PREFIX}{exchange}:{record_type}:{symbol}") or {}
        last_data = fresh.get("received", 0) / 1000 or None
        last_run = entry.get("last_run")
        issues = []
        # silent: no data for the silence limit, or for three intervals if polls are slower
        silence = max(settings.max_silence(), 3 * poll["interval"])
        # a poll beat has not had a first chance to run (its interval since the health
        # check first saw it) is pending, not missing
        pending = last_run is None and now - first_seen.get(poll_name(exchange, kind, symbol), 0) <= silence
        if not pending and (last_run is None or now - last_run > silence):
            issues.append("should run but does not")
        if not pending and (last_data is None or now - last_data > silence):
            issues.append("no data within the silence limit")
        if entry.get("errors_in_a_row", 0) >= settings.error_threshold():
            issues.append(f"{entry['errors_in_a_row']} errors in a row ({entry.get('last_error')})")
        statuses[poll_name(exchange, kind, symbol)] = {
            "name": poll_name(exchange, kind, symbol), "kind": "poll", "exchange": exchange,
            "status": ("running" if last_run and now - last_run <= silence
                       else "pending" if pending else "stopped"),
            "should_be_running": True, "symbols": [symbol], "data_types": [kind],
            "auto_restart": False,
            "health": {"time_since_heartbeat": round(now - last_run, 3) if last_run else None,
                       "time_since_data": round(now - last_data, 3) if last_data else None,
                       "max_silence_duration": silence},
            "statistics": {"messages_received": entry.get("runs", 0),
                           "messages_processed": entry.get("runs", 0) - sum(entry.get("errors", {}).values()),
                           "errors": sum(entry.get("errors", {}).values()),
                           "errors_by_code": entry.get("errors", {}), "restarts": 0,
                           "last_message_time": last_data, "last_error": entry.get("last_error")},
            "health_status": {"is_healthy": not issues, "issues": issues,
                              "last_heartbeat": last_run, "last_data_received": last_data,
                              "is_running": bool(last_run and now - last_run <= silence)},
        }
    return statuses


def system_status(state) -> dict:
    """The seed design's manager dictionary: statistics, and one entry per collector."""
    from streamers.supervisor import read_status
    collectors = poll_statuses(state)
    supervisor = read_status(state) or {}
    for name, status in (supervisor.get("collectors") or {}).items():
        collectors[name] = {**status, "kind": "stream"}
    running = sum(1 for c in collectors.values() if c["status"] == "running")
    return {
        "updated": time.time(),
        "supervisor_running": bool(supervisor.get("supervisor_running")
                                   and time.time() - supervisor.get("updated", 0) < 10),
        "statistics": {
            "total_collectors": len(collectors), "running": running,
            "failed": sum(1 for c in collectors.values() if c["status"] == "failed"),
            "unhealthy": sum(1 for c in collectors.values()
                             if not c["health_status"]["is_healthy"]),
            "restarts_performed": sum(c["statistics"]["restarts"] for c in collectors.values()),
        },
        "collectors": collectors,
    }


def check_health(state, ask_supervisor=None) -> dict:
    """Judge every collector; restart unhealthy streamers (backoff, bounded); save the report."""
    from streamers.supervisor import send_command
    ask_supervisor = ask_supervisor or (lambda verb, name: send_command(verb, name, wait=0,
                                                                        state=state))
    now = time.time()
    first_seen = state.get(FIRST_SEEN_KEY) or {}
    names = {poll_name(p["exchange"], p["type"], p["symbol"]) for p in load_polls(settings.collectors_file())}
    if names - set(first_seen):
        state.put(FIRST_SEEN_KEY, {**{name: now for name in names}, **first_seen})
    report = system_status(state)
    streams = {s["name"] for s in load_streams(settings.collectors_file())}
    for name, status in report["collectors"].items():
        if not status["health_status"]["is_healthy"]:
            log.warning("health: collector=%s unhealthy: %s", name, "; ".join(status["health_status"]["issues"]))
        if status.get("kind") != "stream" or name not in streams:
            continue
        key = f"health:restarts:{name}"
        memo = state.get(key) or {"in_a_row": 0, "next_at": 0}
        if status["health_status"]["is_healthy"]:
            if memo["in_a_row"]:
                state.put(key, {"in_a_row": 0, "next_at": 0})
            continue
        if status["status"] in ("disabled", "failed") or now < memo["next_at"]:
            continue
        if memo["in_a_row"] >= settings.max_reconnect_attempts():
            log.error("health: collector=%s still unhealthy after %d restarts: marking it failed",
                      name, memo["in_a_row"])
            ask_supervisor("fail", name)
            continue
        ask_supervisor("restart", name)
        memo["in_a_row"] += 1
        memo["next_at"] = now + settings.reconnect_delay() * 2 ** (memo["in_a_row"] - 1)
        state.put(key, memo)
        log.warning("health: asked the supervisor to restart collector=%s (%d in a row)", name, memo["in_a_row"])
    state.put(HEALTH_KEY, report)
    return report
