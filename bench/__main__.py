"""python -m bench [NAME ...] [--quick] [--json]"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHMARKS = ("rtt", "ingest", "normalize")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one or more of {', '.join(BENCHMARKS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="fewer runs: the whole suite in minutes")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))} (one of {', '.join(BENCHMARKS)})")
    results = []
    for name in args.names or BENCHMARKS:
        result = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        results.append(result)
        if not args.json:
            print_table(result)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return 0


def print_table(result: dict) -> None:
    print(f"\n== {result['name']} ({result['runs']} runs each, medians)")
    rows = result["rows"]
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))


if __name__ == "__main__":
    sys.exit(main())
