"""The one plot of BENCHMARKS.md: ingest frames/s against batch size, the collector beside the
no-op Celery floor, for trades and for books (log scales: the sizes and rates span decades).

    python -m bench ingest --plot docs/ingest.png
    python -m bench.plot results.json docs/ingest.png      # from a saved --json run
"""
from __future__ import annotations

import json
import re
import sys


def plot_ingest(document: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")   # no screen here
    import matplotlib.pyplot as plt

    ingest = next((b for b in document["benchmarks"] if b["name"] == "ingest"), None)
    if ingest is None:
        raise SystemExit("--plot needs the ingest benchmark in the run")
    series: dict[str, dict[str, list]] = {}
    for row in ingest["rows"]:
        kind, size = re.fullmatch(r"(\w+), batch (\d+)", row["figure"]).groups()
        for who, value in (("collector", row["value"]), ("no-op floor", row["floor_value"])):
            points = series.setdefault(f"{kind}: {who}", {"x": [], "y": []})
            points["x"].append(int(size))
            points["y"].append(value)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    colours = {}
    for label, points in series.items():   # one colour a frame kind: the floor dashed beside it
        colour = colours.setdefault(label.split(":")[0], f"C{len(colours)}")
        axes.plot(points["x"], points["y"], marker="o", color=colour,
                  linestyle="--" if "floor" in label else "-", label=label)
    axes.axhline(30_000, color="grey", linewidth=0.8, linestyle=":")
    axes.annotate("target for trades: 30,000/s", (1, 30_000), textcoords="offset points",
                  xytext=(2, 4), fontsize=8, color="grey")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("frames per task (streamer batch size)")
    axes.set_ylabel("frames per second, simulator to PostgreSQL")
    axes.set_title(f"ingest throughput ({'quick' if document.get('quick') else 'full'} run; "
                   f"{document.get('machine', '')})", fontsize=8)
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.plot RESULTS.json OUT.png")
    with open(sys.argv[1]) as results:
        plot_ingest(json.load(results), sys.argv[2])
