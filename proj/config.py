"""collectors.toml: what to poll (-> Celery beat schedule) and what to stream (-> streamers)."""
from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

DEFAULT_INTERVAL = 10.0


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def load_streams(path: Path) -> list[dict]:
    """The [[stream]] tables: one websocket connection each (name defaults to the exchange)."""
    config = _load(path)
    defaults = config.get("defaults", {})
    streams = []
    for table in config.get("stream", []):
        streams.append({
            "name": table.get("name", table["exchange"]),
            "exchange": table["exchange"],
            "symbols": list(table["symbols"]),
            "types": list(table.get("types", ["trades", "order_book"])),
            "enabled": table.get("enabled", True),
            "batch_size": int(table.get("batch_size", defaults.get("batch_size", 100))),
            "batch_ms": float(table.get("batch_ms", defaults.get("batch_ms", 10))),
            "max_silence": table.get("max_silence", defaults.get("max_silence")),
        })
    names = [s["name"] for s in streams]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{path}: stream names must be unique ({', '.join(sorted(duplicates))}); "
                         "give each [[stream]] a name")
    return streams


def load_polls(path: Path) -> list[dict]:
    """The [[poll]] tables of the file, one dict per poll; a missing file means no polls."""
    config = _load(path)
    defaults = config.get("defaults", {})
    polls = []
    for table in config.get("poll", []):
        if table.get("enabled", True) is False:
            continue
        interval = float(table.get("interval", defaults.get("interval", DEFAULT_INTERVAL)))
        for kind in table["types"]:
            for symbol in table["symbols"]:
                polls.append({"exchange": table["exchange"], "type": kind, "symbol": symbol,
                              "timeframe": table.get("timeframe") if kind == "candles" else None,
                              "limit": table.get("limit"), "interval": interval})
    return polls


def beat_schedule(path: Path) -> dict:
    schedule = {}
    for poll in load_polls(path):
        name = f"poll {poll['exchange']} {poll['type']} {poll['symbol']}"
        if poll["timeframe"]:
            name += f" {poll['timeframe']}"
        kwargs = {k: poll[k] for k in ("timeframe", "limit") if poll[k] is not None}
        schedule[name] = {
            "task": "collector.poll",
            "schedule": timedelta(seconds=poll["interval"]),
            "args": (poll["exchange"], poll["type"], poll["symbol"]),
            "kwargs": kwargs,
            # a poll still queued after its interval is stale: the next one is already coming
            "options": {"expires": poll["interval"]},
        }
    return schedule
