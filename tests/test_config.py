"""collectors.toml -> beat schedule and streams."""
from datetime import timedelta

import pytest

from proj.config import beat_schedule, load_streams

TOML = """
[defaults]
interval = 7

[[poll]]
exchange = "bitstamp"
symbols = ["BTC/USD", "ETH/USD"]
types = ["order_book", "trades"]

[[poll]]
exchange = "bitstamp"
symbols = ["BTC/USD"]
types = ["candles"]
timeframe = "1m"
limit = 5
interval = 60

[[stream]]
exchange = "bitstamp"
symbols = ["BTC/USD"]
batch_size = 10
"""


def test_polls_become_beat_entries_that_expire_with_their_interval(tmp_path):
    path = tmp_path / "collectors.toml"
    path.write_text(TOML)
    schedule = beat_schedule(path)
    assert len(schedule) == 5
    entry = schedule["poll bitstamp trades ETH/USD"]
    assert entry["task"] == "collector.poll" and entry["args"] == ("bitstamp", "trades", "ETH/USD")
    assert entry["schedule"] == timedelta(seconds=7) and entry["options"] == {"expires": 7.0}
    candles = schedule["poll bitstamp candles BTC/USD 1m"]
    assert candles["kwargs"] == {"timeframe": "1m", "limit": 5}
    assert candles["options"] == {"expires": 60.0}


def test_streams(tmp_path):
    path = tmp_path / "collectors.toml"
    path.write_text(TOML)
    [stream] = load_streams(path)
    assert stream["name"] == "bitstamp" and stream["batch_size"] == 10
    assert stream["types"] == ["trades", "order_book"]
    path.write_text(TOML + TOML.split("[[stream]]")[1].join(["[[stream]]", ""]))
    with pytest.raises(ValueError, match="unique"):
        load_streams(path)


def test_missing_file_means_nothing_scheduled(tmp_path):
    assert beat_schedule(tmp_path / "none.toml") == {} and load_streams(tmp_path / "none.toml") == []
