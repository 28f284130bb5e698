"""The command line: python -m proj {fetch,stream,run,demo,sim,streamers} (see README.md)."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import orjson

from . import settings
from .records import KINDS, TIMEFRAMES

FLOWER_PORT = 5555
METRICS_PORT = 9808


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:   # its options are the simulator's own (argparse REMAINDER drops them)
        from .sim import main as sim_main
        return sim_main(argv[1:]) or 0
    parser = argparse.ArgumentParser(prog="python -m proj", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="fetch one data type once and print it as JSON")
    fetch.add_argument("exchange")
    fetch.add_argument("type", choices=KINDS)
    fetch.add_argument("symbol", help="BASE/QUOTE, e.g. BTC/USD")
    fetch.add_argument("--timeframe", choices=TIMEFRAMES, help="for candles (default 1h)")
    fetch.add_argument("--limit", type=int)
    fetch.add_argument("--base-url", help="replaces the exchange's scheme://host[:port]")
    fetch.add_argument("--timeout", type=float, help="seconds one attempt may take in all")
    fetch.add_argument("--attempts", type=int, help="attempts for what can pass on retry")

    stream = commands.add_parser("stream", help="one websocket stream in this process, records "
                                 "as JSON lines on stdout (no broker)")
    stream.add_argument("exchange")
    stream.add_argument("symbol", nargs="+", help="BASE/QUOTE, one or more")
    stream.add_argument("--types", default="trades,order_book",
                        help="comma-separated: trades, order_book (default both)")
    stream.add_argument("--ws-url", help="the websocket URL (default the exchange's, or "
                        "COLLECTOR_<EXCHANGE>_WS_URL)")
    stream.add_argument("--seconds", type=float, help="stop after this many seconds")

    control = commands.add_parser("streamers", help="ask the running streamer supervisor")
    control.add_argument("action", choices=("status", "enable", "disable", "restart",
                                            "add-symbol", "remove-symbol"))
    control.add_argument("name", nargs="?", help="the stream's name (collectors.toml)")
    control.add_argument("symbol", nargs="?", help="for add-symbol / remove-symbol")
    control.add_argument("--json", action="store_true", help="status as JSON")

    status = commands.add_parser("status", help="one table for the whole system (polls and "
                                 "streams), from the shared state")
    status.add_argument("--json", action="store_true", help="the manager dictionary as JSON")

    metrics = commands.add_parser("metrics", help="serve Prometheus metrics (all worker "
                                  "processes added up, and feed freshness)")
    metrics.add_argument("--port", type=int, default=9808)
    metrics.add_argument("--host", default="127.0.0.1",
                         help="address to bind (default loopback; 0.0.0.0 in a container)")

    for name, text in (("run", "worker, beat and Flower on this machine until Ctrl-C"),
                       ("demo", "the same against the exchange simulator, showing rows arrive")):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("--concurrency", type=int, default=2)
        cmd.add_argument("--no-flower", action="store_true")
        cmd.add_argument("--seconds", type=float, help="stop after this many seconds")

    commands.add_parser("sim", help="serve the exchange simulator (sim --help for its options)")

    args = parser.parse_args(argv)
    from .logs import configure
    configure(args.command)
    if args.command == "fetch":
        return command_fetch(args)
    if args.command == "status":
        return command_status(args)
    if args.command == "metrics":
        from .metrics import serve
        serve(args.port, args.host)
        print(f"metrics on http://{args.host}:{args.port}/metrics", file=sys.stderr)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    if args.command == "stream":
        return command_stream(args)
    if args.command == "streamers":
        return command_streamers(args)
    return command_run(args, demo=args.command == "demo")


def command_fetch(args) -> int:
    from .collect import fetch_records
    result = fetch_records(args.exchange, args.type, args.symbol, timeframe=args.timeframe,
                           limit=args.limit, base_url=args.base_url, timeout=args.timeout,
                           attempts=args.attempts)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 1 if isinstance(result, dict) and "err" in result else 0


def command_stream(args) -> int:
    from streamers.connection import Streamer

    from .ingest import normalize_frames
    from .records import CollectorError
    out = sys.stdout.buffer
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    try:
        from .exchanges import get_exchange
        adapter = get_exchange(args.exchange)
        unknown = [t for t in types if t not in adapter.ws_types]
        if unknown:
            raise CollectorError("unsupported", f"{args.exchange} streams "
                                 f"{', '.join(adapter.ws_types) or 'nothing'}, not {', '.join(unknown)}")
    except CollectorError as error:
        out.write(orjson.dumps(error.to_dict(exchange=args.exchange)) + b"\n")
        return 1

    def print_records(frames):   # the worker's parsing, run here instead of in a worker
        records, _ = normalize_frames(args.exchange, frames)
        try:
            for record in records:
                out.write(orjson.dumps(record) + b"\n")
            out.flush()
        except BrokenPipeError:     # the reader left (`| head`): stop, quietly
            streamer.stop()
            sys.stdout = None       # nothing more to flush at exit

    streamer = Streamer(args.exchange, [s.upper() for s in args.symbol], types, print_records,
                        ws_url=args.ws_url, batch_size=1)
    signal.signal(signal.SIGTERM, lambda *_: streamer.stop())
    try:
        streamer.run(seconds=args.seconds)
    except KeyboardInterrupt:
        pass
    return 0


def command_streamers(args) -> int:
    from streamers.supervisor import read_status, send_command
    if args.action == "status":
        status = read_status()
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(status, option=orjson.OPT_INDENT_2) + b"\n")
            return 0 if status else 1
        return _print_streamers_status(status)
    if not args.name:
        print(f"streamers {args.action} needs a stream name", file=sys.stderr)
        return 2
    reply = send_command(args.action.replace("-", "_"), args.name, args.symbol)
    print(reply["detail"], file=sys.stderr if not reply["ok"] else sys.stdout)
    return 0 if reply["ok"] else 1


def command_status(args) -> int:
    from .health import system_status
    from .state import open_state
    report = system_status(open_state())
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    stats = report["statistics"]
    print(f"{stats['total_collectors']} collectors: {stats['running']} running, "
          f"{stats['failed']} failed, {stats['unhealthy']} unhealthy, "
          f"{stats['restarts_performed']} restarts"
          + ("" if report["supervisor_running"] else "; streamer supervisor not reporting"))
    rows = [("collector", "kind", "state", "healthy", "data age", "messages", "errors", "restarts")]
    for name, c in sorted(report["collectors"].items(), key=lambda item: (item[1]["kind"], item[0])):
        st, age = c["statistics"], c["health"]["time_since_data"]
        by_code = st.get("errors_by_code") or {}
        errors = ",".join(f"{k}:{v}" for k, v in sorted(by_code.items())) or str(st["errors"])
        rows.append((name, c["kind"], c["status"], "yes" if c["health_status"]["is_healthy"] else "NO",
                     f"{age:.1f}s" if age is not None else "-", str(st["messages_received"]),
                     errors, str(st["restarts"])))
    _print_table(rows, report["collectors"])
    return 0


def _print_streamers_status(status) -> int:
    if not status:
        print("no supervisor has reported yet (start it with `python -m streamers` or `run`)")
        return 1
    age = time.time() - status["updated"]
    if not status.get("supervisor_running") or age > 10:
        print(f"supervisor not running (last report {age:.0f}s ago)")
    rows = [("stream", "status", "healthy", "data age", "received", "processed", "errors",
             "reconnects", "restarts", "symbols")]
    for name, c in sorted(status["collectors"].items()):
        stats, health = c["statistics"], c["health"]
        data_age = health["time_since_data"]
        rows.append((name, c["status"], "yes" if c["health_status"]["is_healthy"] else "NO",
                     f"{data_age:.1f}s" if data_age is not None else "-",
                     str(stats["messages_received"]), str(stats["messages_processed"]),
                     str(stats["errors"]), str(stats["reconnect_attempts"]), str(stats["restarts"]),
                     ",".join(c["symbols"])))
    _print_table(rows, status["collectors"])
    return 0


def _print_table(rows: list[tuple], collectors: dict) -> None:
    """Aligned columns, then each collector's health issues, one a line."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    for name, collector in sorted(collectors.items()):
        for issue in collector["health_status"]["issues"]:
            print(f"{name}: {issue}")


def command_run(args, demo: bool) -> int:
    env = dict(os.environ)
    simulator = subscriber = None
    if demo:
        from .sim import Simulator
        simulator = Simulator(host="127.0.0.1", port=0).start()
        for exchange, streams in _simulated_exchanges():
            env[f"COLLECTOR_{exchange.upper()}_REST_URL"] = simulator.url
            if streams:
                env[f"COLLECTOR_{exchange.upper()}_WS_URL"] = simulator.ws_url_for(exchange)
        env.setdefault("COLLECTOR_DATA_DIR", str(settings.data_dir() / "demo"))
        if not env.get("COLLECTOR_REDIS_URL") and _redis_answers(DEMO_REDIS_URL):
            env["COLLECTOR_REDIS_URL"] = DEMO_REDIS_URL
        print(f"simulator serving REST at {simulator.url}, websockets at {simulator.ws_url}",
              file=sys.stderr)
        status_env = f"COLLECTOR_DATA_DIR={env['COLLECTOR_DATA_DIR']}" + (
            f" COLLECTOR_REDIS_URL={env['COLLECTOR_REDIS_URL']}" if env.get("COLLECTOR_REDIS_URL") else "")
        print(f"streamer status from another shell: {status_env} ./collector streamers status",
              file=sys.stderr)
    os.environ.update(env)   # the row counter below reads the same store as the workers
    if demo and settings.redis_url():
        subscriber = _RedisSubscriber(settings.redis_url())
    elif demo:
        print("no Redis at COLLECTOR_REDIS_URL or 127.0.0.1:6379: live fan-out is off",
              file=sys.stderr)
    celery = [sys.executable, "-m", "celery", "-A", "proj"]
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    services = {
        "worker": celery + ["worker", "--loglevel", settings.log_level(), "-Q", "celery,poll,publish,ingest",
                            "--concurrency", str(args.concurrency), "-n", "collector@%h"],
        "beat": celery + ["beat", "--loglevel", settings.log_level(),
                          "--schedule", str(data / "celerybeat-schedule")],
    }
    if not args.no_flower:
        # loopback only: Flower can revoke tasks and shut workers down
        services["flower"] = celery + ["flower", "--address=127.0.0.1", f"--port={FLOWER_PORT}",
                                       "--persistent=True", f"--db={data / 'flower.db'}"]
    services["streamers"] = [sys.executable, "-m", "streamers"]
    services["metrics"] = [sys.executable, "-m", "proj", "metrics", "--port", str(METRICS_PORT)]
    children = {name: subprocess.Popen(cmd, env=env, cwd=settings.PROJECT_DIR,
                                       start_new_session=True)
                for name, cmd in services.items()}
    print(f"collector running: {', '.join(children)} (data in {data}; store "
          f"{settings.database_url()}"
          + (f"; Flower on http://127.0.0.1:{FLOWER_PORT}" if "flower" in children else "")
          + f"; metrics on http://127.0.0.1:{METRICS_PORT}/metrics"
          + "). Ctrl-C stops.", file=sys.stderr)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started = time.monotonic()
    try:
        while not stopping:
            if args.seconds and time.monotonic() - started > args.seconds:
                break
            dead = [n for n, p in children.items() if p.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited; stopping", file=sys.stderr)
                break
            time.sleep(1)
            if demo and int(time.monotonic() - started) % 5 == 0:
                _print_row_counts()
                if subscriber is not None:
                    subscriber.print_and_reset()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children(children)
        if subscriber is not None:
            subscriber.stop()
        if simulator is not None:
            simulator.stop()
    return 0


DEMO_REDIS_URL = "redis://127.0.0.1:6379/0"


def _simulated_exchanges() -> list[tuple[str, bool]]:
    """(name, has a websocket) of every exchange."""
    from .exchanges import exchange_names, get_exchange
    return [(name, bool(get_exchange(name).ws_types)) for name in exchange_names()]


def _redis_answers(url: str) -> bool:
    import redis
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


class _RedisSubscriber:
    """What a live consumer sees: counts of records arriving on collector:* channels."""

    def __init__(self, url: str):
        import threading
        from collections import Counter

        import redis
        self.counts = Counter()
        self.lock = threading.Lock()
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(**{"collector:*": self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.2, daemon=True)

    def _on_message(self, message) -> None:
        _, exchange, kind, symbol = message["channel"].decode().split(":", 3)
        with self.lock:
            self.counts[f"{exchange} {kind} {symbol}"] += 1

    def print_and_reset(self) -> None:
        with self.lock:
            counts, self.counts = dict(self.counts), type(self.counts)()
        text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing yet"
        print(f"redis subscriber (collector:*), last 5s: {text}", file=sys.stderr)

    def stop(self) -> None:
        self.thread.stop()


def _print_row_counts() -> None:
    try:
        from .publish import get_store
        store = get_store()
        counts = {kind: store.count(kind) for kind in ("order_book", "trade", "ticker", "candle")}
        print("rows stored: " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    except Exception as exc:  # the store may not exist until the first publish
        print(f"rows stored: not yet ({exc})", file=sys.stderr)


def _stop_children(children: dict) -> None:
    # a second Ctrl-C must not abandon the children half-stopped (they are in their own sessions)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a warm shutdown first (SIGTERM): the worker finishes what it runs, acks_late keeps the rest
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for name, proc in children.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", file=sys.stderr)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("collector stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
