"""The command line: python -m proj {fetch,run,demo,sim} (see README.md)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

import orjson

from . import settings
from .records import KINDS, TIMEFRAMES

FLOWER_PORT = 5555


def main(argv: list[str] | None = None) -> int:
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

    for name, text in (("run", "worker, beat and Flower on this machine until Ctrl-C"),
                       ("demo", "the same against the exchange simulator, showing rows arrive")):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("--concurrency", type=int, default=2)
        cmd.add_argument("--no-flower", action="store_true")
        cmd.add_argument("--seconds", type=float, help="stop after this many seconds")

    sim = commands.add_parser("sim", help="serve the exchange simulator", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)

    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "fetch":
        return command_fetch(args)
    if args.command == "sim":
        from .sim import main as sim_main
        return sim_main(args.sim_args) or 0
    return command_run(args, demo=args.command == "demo")


def command_fetch(args) -> int:
    from .collect import fetch_records
    result = fetch_records(args.exchange, args.type, args.symbol, timeframe=args.timeframe,
                           limit=args.limit, base_url=args.base_url, timeout=args.timeout,
                           attempts=args.attempts)
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 1 if isinstance(result, dict) and "err" in result else 0


def command_run(args, demo: bool) -> int:
    env = dict(os.environ)
    simulator = None
    if demo:
        from .sim import Simulator
        simulator = Simulator(host="127.0.0.1", port=0).start()
        env["COLLECTOR_BITSTAMP_REST_URL"] = simulator.url
        env.setdefault("COLLECTOR_DATA_DIR", str(settings.data_dir() / "demo"))
        print(f"simulator serving Bitstamp at {simulator.url}", file=sys.stderr)
    os.environ.update(env)   # the row counter below reads the same store as the workers
    celery = [sys.executable, "-m", "celery", "-A", "proj"]
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    services = {
        "worker": celery + ["worker", "--loglevel", settings.log_level(), "-Q", "fetch,poll,publish",
                            "--concurrency", str(args.concurrency), "-n", "collector@%h"],
        "beat": celery + ["beat", "--loglevel", settings.log_level(),
                          "--schedule", str(data / "celerybeat-schedule")],
    }
    if not args.no_flower:
        # loopback only: Flower can revoke tasks and shut workers down
        services["flower"] = celery + ["flower", "--address=127.0.0.1", f"--port={FLOWER_PORT}",
                                       "--persistent=True", f"--db={data / 'flower.db'}"]
    children = {name: subprocess.Popen(cmd, env=env, cwd=settings.PROJECT_DIR,
                                       start_new_session=True)
                for name, cmd in services.items()}
    print(f"collector running: {', '.join(children)} (data in {data}; store "
          f"{settings.database_url()}"
          + (f"; Flower on http://127.0.0.1:{FLOWER_PORT}" if "flower" in children else "")
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
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children(children)
        if simulator is not None:
            simulator.stop()
    return 0


def _print_row_counts() -> None:
    try:
        from .publish import get_store
        store = get_store()
        counts = {kind: store.count(kind) for kind in ("order_book", "trade", "ticker", "candle")}
        print("rows stored: " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    except Exception as exc:  # the store may not exist until the first publish
        print(f"rows stored: not yet ({exc})", file=sys.stderr)


def _stop_children(children: dict) -> None:
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
