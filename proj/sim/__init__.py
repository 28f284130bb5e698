"""Exchange simulator: a local HTTP server with real exchange paths, lively self-consistent data
in the exchanges' exact shapes, and faults injected per endpoint on demand.

    from proj.sim import Simulator
    with Simulator(port=0) as sim:
        sim.set_fault("/api/v2/order_book/btcusd/", "status", status=503, times=1)
        requests.get(sim.url + "/api/v2/order_book/btcusd/")

From another process: `python -m proj sim --port 8800 --fault /api/v2/ticker/btcusd=hang`, then
the HTTP control API: POST/GET/DELETE /_sim/faults, GET/DELETE /_sim/stats.

Websockets are served on a port of their own, one path prefix per exchange (see wsserver.py):

    with Simulator(port=0) as sim:
        url = sim.ws_url_for("bitstamp")                  # ws://127.0.0.1:PORT/bitstamp
        ids = sim.ws_script_trades("btcusd", 50)          # exactly these trades, in this order
        sim.set_ws_fault("drop", at_trade=10)             # the connection dies before trade 10

It deliberately imports nothing else from `proj`: it is written from the exchanges' documented
and recorded shapes, never from the collector's parsers.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import threading
from typing import Any, Sequence

from .server import FAULT_DEFAULTS, FAULT_KINDS, Exchange, Route, SimRequest, SimResponse, SimServer
from .wsserver import WS_FAULT_DEFAULTS, WS_FAULT_KINDS, WsExchange, WsRoute, WsServer, WsSession

__all__ = ("Simulator", "SimServer", "Exchange", "Route", "SimRequest", "SimResponse",
           "FAULT_KINDS", "FAULT_DEFAULTS", "default_exchanges", "parse_fault_spec", "main",
           "WsServer", "WsExchange", "WsRoute", "WsSession", "WS_FAULT_KINDS", "WS_FAULT_DEFAULTS",
           "default_ws_exchanges")


_ENGINE_MODULES = {"server", "wsserver"}


def _exchange_modules():
    """Every exchange module of the simulator, found by name: adding an exchange is adding a
    file that defines SIM_REST (its REST class) and/or SIM_WS (its websocket class)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _ENGINE_MODULES and not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def default_exchanges() -> list[Exchange]:
    """A fresh instance of every exchange the simulator knows (each keeps its own caches)."""
    return [module.SIM_REST() for module in _exchange_modules() if hasattr(module, "SIM_REST")]


def default_ws_exchanges() -> list[WsExchange]:
    """A fresh instance of every exchange whose websocket API the simulator knows."""
    return [module.SIM_WS() for module in _exchange_modules() if hasattr(module, "SIM_WS")]


class Simulator(SimServer):
    """SimServer preloaded with every exchange the simulator knows, plus their websocket APIs
    on a port of their own (`ws_port`, 0 = a free one), started and stopped with it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 exchanges: Sequence[Exchange] | None = None, log_requests: bool = False,
                 ws_port: int = 0, ws_exchanges: Sequence[WsExchange] | None = None) -> None:
        super().__init__(host, port,
                         default_exchanges() if exchanges is None else exchanges, log_requests)
        self.ws = WsServer(host, ws_port,
                           default_ws_exchanges() if ws_exchanges is None else ws_exchanges,
                           log=self.log)

    # -- lifecycle: HTTP and websockets together ------------------------------------------------

    def start(self) -> "Simulator":
        super().start()
        try:
            self.ws.start()
        except BaseException:
            super().stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.ws.stop(timeout)
        finally:
            super().stop(timeout)

    # -- websockets -----------------------------------------------------------------------------

    @property
    def ws_port(self) -> int:
        return self.ws.port

    @property
    def ws_url(self) -> str:
        """ws://HOST:PORT, the websocket server of every exchange."""
        return self.ws.url

    def ws_url_for(self, exchange: str) -> str:
        """One exchange's websocket URL, e.g. ws://127.0.0.1:PORT/bitstamp."""
        return self.ws.url_for(exchange)

    def ws_exchange(self, name: str = "bitstamp") -> Any:
        """The exchange's websocket object, e.g. to change BitstampWs.trade_interval."""
        return self.ws.exchange(name)

    def set_ws_fault(self, kind: str, exchange: str = "bitstamp", at_trade: int | None = None,
                     times: int = 1, **params: Any) -> dict[str, Any]:
        """See WsServer.set_fault; kinds and their parameters in WS_FAULT_DEFAULTS. `pair=`
        restricts an at_trade fault to that pair's script."""
        return self.ws.set_fault(kind, exchange, at_trade, times, **params)

    def clear_ws_faults(self, exchange: str | None = None) -> int:
        return self.ws.clear_faults(exchange)

    def list_ws_faults(self) -> list[dict[str, Any]]:
        return self.ws.list_faults()

    def ws_connection_count(self, exchange: str = "bitstamp") -> int:
        """Websocket handshakes accepted in total."""
        return self.ws.connection_count(exchange)

    def ws_frames_sent(self, exchange: str = "bitstamp") -> int:
        """Text and binary frames sent in total: acks, heartbeats, data and garbage alike."""
        return self.ws.frames_sent(exchange)

    def ws_script_trades(self, pair: str, count: int, interval: float = 0.005,
                         exchange: str = "bitstamp") -> list[int]:
        """Emit exactly `count` trades on the pair's trades channel, one every `interval`
        seconds, each sent once on one subscribed connection (waiting while none is), in place
        of the lively trades of that pair. Returns their ids in order."""
        return self.ws.exchange(exchange).script_trades(pair, count, interval)

    def ws_blast_trades(self, pair: str, count: int, exchange: str = "bitstamp") -> list[int]:
        """Queue `count` trade frames at once to the pair's subscribers (benchmarks)."""
        return self.ws.exchange(exchange).blast_trades(pair, count)

    def ws_blast_books(self, pair: str, count: int, exchange: str = "bitstamp") -> int:
        """Queue `count` top-100 book snapshots at once to the pair's order_book subscribers."""
        return self.ws.exchange(exchange).blast_books(pair, count)

    def ws_script_done(self, pair: str, exchange: str = "bitstamp") -> bool:
        return self.ws.script_done(exchange, pair)

    def ws_script_sent(self, pair: str, exchange: str = "bitstamp") -> int:
        """Scripted trades sent in the pair's current (or last) script batch."""
        return self.ws.script_sent(exchange, pair)


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
    parser.add_argument("--ws-port", type=int, default=8801,
                        help="the websocket port, one path per exchange (0 picks a free port)")
    parser.add_argument("--fault", action="append", default=[], metavar="PATH=KIND[:k=v,...]",
                        help="e.g. /api/v2/order_book/btcusd/=status:status=503,times=2 "
                             "(repeatable; faults on one path apply in order)")
    args = parser.parse_args(argv)

    simulator = Simulator(args.host, args.port, log_requests=True, ws_port=args.ws_port)
    try:
        for spec in args.fault:
            simulator.set_fault(**parse_fault_spec(spec))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    simulator.start()
    print(f"simulator listening on {simulator.url}", file=sys.stderr, flush=True)
    routes = ", ".join(f"{e.name}: {simulator.ws_url_for(e.name)}" for e in simulator.ws.exchanges)
    print(f"simulator websockets on {simulator.ws_url} ({routes})", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()   # serve until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0
