"""normalize: per-frame cost of validate + normalize (the worker's parse_ws) for each
exchange's trade and book frames, real payloads from ../shared/fixtures, beside orjson.loads
of the same bytes, measured in one run."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import orjson

from proj.exchanges import get_exchange

from .harness import figure

FIXTURES = Path(os.environ.get("COLLECTOR_SHARED_DIR")
                or Path(__file__).resolve().parent.parent.parent / "shared") / "fixtures"
RECEIVED = 1700000000000


def _read(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


def _bitstamp_book() -> str:   # the order_book channel: a top-100 snapshot (REST levels)
    rest = orjson.loads(_read("bitstamp/rest_order_book_ethusd.json"))
    data = {"timestamp": rest["timestamp"], "microtimestamp": rest["microtimestamp"],
            "bids": rest["bids"][:100], "asks": rest["asks"][:100]}
    return orjson.dumps({"data": data, "channel": "order_book_ethusd", "event": "data"}).decode()


def _binance_book() -> str:    # depth20: no recording exists; recorded REST levels in its shape
    rest = orjson.loads(_read("binance/rest_depth_nknusdt_limit1000.json"))
    data = {"lastUpdateId": rest["lastUpdateId"], "bids": rest["bids"][:20], "asks": rest["asks"][:20]}
    return orjson.dumps({"stream": "nknusdt@depth20@100ms", "data": data}).decode()


FRAMES = {   # exchange: (trade frame, book frame, what the book is)
    "bitstamp": (lambda: _read("bitstamp/ws_live_trades_trade_ethusd.json"), _bitstamp_book,
                 "order_book 100+100"),
    "binance": (lambda: _read("binance/ws_combined_trade_ethusdt.json"), _binance_book,
                "depth20 20+20"),
    "okx": (lambda: _read("okx/ws_trades_btcusdt.json"),
            lambda: _read("okx/ws_books_snapshot_btcusdt.json"), "books snapshot 400+400"),
    "coinbase": (lambda: _read("coinbase/ws_at_market_trades_update.json"),
                 lambda: _read("coinbase/large/ws_at_l2_data_snapshot_ethusd.json"),
                 "level2 snapshot (whole book)"),
    "kraken": (lambda: _read("kraken/ws_v2_trade_update_docs_derived.json"),
               lambda: _read("kraken/ws_v2_book_snapshot_docs_derived.json"), "v2 book snapshot"),
}


def _per_call_us(call, budget_s: float) -> float:
    """Median over repeats of the mean time of a call, in microseconds."""
    call()
    started = time.perf_counter()
    call()
    single = max(time.perf_counter() - started, 1e-7)
    number = max(1, int(0.02 / single))       # ~20 ms a repeat
    repeats = max(5, min(50, int(budget_s / (single * number))))
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples) * 1e6


def run(quick: bool = False) -> dict:
    budget = 0.2 if quick else 1.0
    rows = []
    for exchange, (trade, book, book_kind) in FRAMES.items():
        adapter = get_exchange(exchange)
        for kind, make in (("trade", trade), (book_kind, book)):
            text = make()
            raw = text.encode()
            records = adapter.parse_ws(text, RECEIVED)
            assert records, f"{exchange} {kind}: no records"
            normalize = _per_call_us(lambda: adapter.parse_ws(text, RECEIVED), budget)
            loads = _per_call_us(lambda: orjson.loads(raw), budget)
            rows.append(figure(f"{exchange} {kind} ({len(raw):,} B)", normalize, "µs",
                               "orjson.loads, same bytes", loads, "≤ 2× floor",
                               normalize <= 2 * loads, bytes=len(raw)))
    return {"name": "normalize", "runs": 1, "unit": "µs per frame", "rows": rows}
