"""Exchange simulator: a local HTTP server with real exchange paths, lively self-consistent data
in the exchanges' exact shapes, and faults injected per endpoint on demand.

    from proj.sim import Simulator
    with Simulator(port=0) as sim:
        sim.set_fault("/api/v2/order_book/btcusd/", "status", status=503, times=1)
        requests.get(sim.url + "/api/v2/order_book/btcusd/")

From another process: `python -m proj sim --port 8800 --fault /api/v2/ticker/btcusd=hang`, then
the HTTP control API: POST/GET/DELETE /_sim/faults, GET/DELETE /_sim/stats.

It deliberately imports nothing else from `proj`: it is written from the exchanges' documented
and recorded shapes, never from the collector's parsers.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Sequence

from . import bitstamp
from .server import FAULT_DEFAULTS, FAULT_KINDS, Exchange, Route, SimRequest, SimResponse, SimServer

__all__ = ("Simulator", "SimServer", "Exchange", "Route", "SimRequest", "SimResponse",
           "FAULT_KINDS", "FAULT_DEFAULTS", "default_exchanges", "parse_fault_spec", "main")


def default_exchanges() -> list[Exchange]:
    """A fresh instance of every exchange the simulator knows (each keeps its own caches)."""
    return [bitstamp.BitstampExchange()]


class Simulator(SimServer):
    """SimServer preloaded with every exchange the simulator knows."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 exchanges: Sequence[Exchange] | None = None, log_requests: bool = False) -> None:
        super().__init__(host, port,
                         default_exchanges() if exchanges is None else exchanges, log_requests)


def _scalar(text: str) -> Any:
    """"3" -> 3, "0.5" -> 0.5, "true" -> True, anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """PATH=KIND[:key=value,...] -> {"path": ..., "kind": ..., key: value, ...}"""
    path, sep, rest = spec.partition("=")
    if not sep or not path or not rest:
        raise ValueError(f"expected PATH=KIND[:key=value,...], got {spec!r}")
    kind, _, param_text = rest.partition(":")
    fault: dict[str, Any] = {"path": path, "kind": kind}
    for item in filter(None, param_text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in {spec!r}, got {item!r}")
        fault[key.strip()] = _scalar(value.strip())
    return fault


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proj sim", description="Serve the exchange simulator until Ctrl-C.",
        epilog=f"fault kinds: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8800, help="0 picks a free port")
    parser.add_argument("--fault", action="append", default=[], metavar="PATH=KIND[:k=v,...]",
                        help="e.g. /api/v2/order_book/btcusd/=status:status=503,times=2 "
                             "(repeatable; faults on one path apply in order)")
    args = parser.parse_args(argv)

    simulator = Simulator(args.host, args.port, log_requests=True)
    try:
        for spec in args.fault:
            simulator.set_fault(**parse_fault_spec(spec))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    simulator.start()
    print(f"simulator listening on {simulator.url}", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()   # serve until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0
