"""python -m streamers: run the supervisor over the [[stream]] tables of collectors.toml."""
import argparse
import logging
import signal
import sys
from pathlib import Path

from proj import settings
from proj.config import load_streams

from .supervisor import Supervisor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamers", description=__doc__)
    parser.add_argument("--config", type=Path, default=settings.collectors_file())
    args = parser.parse_args(argv)
    from proj.logs import configure
    configure("streamers")
    streams = load_streams(args.config)
    if not streams:
        logging.getLogger("collector.streamers").warning("no [[stream]] in %s: nothing to run", args.config)
    supervisor = Supervisor(streams)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
