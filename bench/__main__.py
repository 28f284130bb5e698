"""python -m bench [NAME ...] [--quick] [--json] [--plot PNG]

Every benchmark prints its figures beside a floor measured in the same run (ratio = figure /
floor) and what issue 6 asks of it. --quick runs fewer and shorter rounds: the whole suite in
under three minutes, for CI (tests/test_bench.py) and a first look.
"""
from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import platform
import sys
import tempfile
import time

BENCHMARKS = ("ingest", "delay", "rtt", "normalize", "polls", "memory")
COLUMNS = ("figure", "value", "unit", "floor", "floor_value", "ratio", "target", "met")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"one or more of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--plot", metavar="PNG", help="draw ingest throughput by batch size here")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))} (one of {', '.join(BENCHMARKS)})")
    hold_machine()
    started = time.monotonic()
    results = []
    for name in args.names or BENCHMARKS:
        began = time.monotonic()
        result = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        result["seconds"] = round(time.monotonic() - began, 1)
        results.append(result)
        if not args.json:
            print_table(result)
    document = {"machine": machine(), "quick": args.quick,
                "seconds": round(time.monotonic() - started, 1), "benchmarks": results}
    if args.plot:
        from .plot import plot_ingest
        plot_ingest(document, args.plot)
    if args.json:
        json.dump(document, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(f"\n{document['machine']}; {document['seconds']} s in all")
    return 0


def hold_machine() -> None:
    """One suite at a time on a machine: the benchmarks' vhosts, schemas and Redis keys have
    fixed names, and two runs would also share the cores they measure. Held until exit."""
    global _lock
    _lock = open(os.path.join(tempfile.gettempdir(), "collector-bench.lock"), "w")
    try:
        fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("bench: another benchmark run holds this machine; waiting for it", file=sys.stderr)
        fcntl.flock(_lock, fcntl.LOCK_EX)


_lock = None


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def print_table(result: dict) -> None:
    print(f"\n== {result['name']} ({result['runs']} run{'s' if result['runs'] != 1 else ''}"
          f" each, medians; {result['seconds']} s)")
    cells = [[_cell(row.get(column)) for column in COLUMNS] for row in result["rows"]]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(COLUMNS)]
    print("  ".join(column.ljust(width) for column, width in zip(COLUMNS, widths)).rstrip())
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for note in result.get("notes", []):
        print(f"  {note}")


def _cell(value) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
