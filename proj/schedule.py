"""collectors.toml -> Celery beat schedule: one entry per (exchange, type, symbol) poll."""
from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

DEFAULT_INTERVAL = 10.0


def load_polls(path: Path) -> list[dict]:
    """The [[poll]] tables of the file, one dict per poll; a missing file means no polls."""
    if not path.exists():
        return []
    with path.open("rb") as f:
        config = tomllib.load(f)
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
