"""A saved `python -m bench --json` run as Markdown tables (the figures of BENCHMARKS.md).

    python -m bench --json --plot docs/ingest-throughput.png > results.json
    python -m bench.report results.json
"""
from __future__ import annotations

import json
import sys

from .__main__ import COLUMNS, _cell


def markdown(document: dict) -> str:
    lines = [f"Machine: {document['machine']}; {'quick' if document['quick'] else 'full'} run, "
             f"{document['seconds']:.0f} s in all.", ""]
    for result in document["benchmarks"]:
        lines.append(f"### {result['name']} ({result['runs']} run{'s' if result['runs'] != 1 else ''}"
                     f" each, medians; {result['seconds']:.0f} s)")
        lines.append("")
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for row in result["rows"]:
            lines.append("| " + " | ".join(_cell(row.get(column)).replace("|", "\\|")
                                           for column in COLUMNS) + " |")
        lines += [f"- {note}" for note in result.get("notes", [])]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.report RESULTS.json")
    with open(sys.argv[1]) as results:
        print(markdown(json.load(results)))
