"""Logging for every process: one line per event on stderr and, when COLLECTOR_LOG_DIR is
set (e.g. logs/), also to a rotating file per process kind (LOG_MAX_FILES files of
COLLECTOR_LOG_MAX_BYTES each). LOG_CLEANUP=true removes, at start, rotated files beyond
LOG_MAX_FILES (left over after the limit was lowered). Events carry their fields as
key=value pairs (collector=, exchange=, symbol=, err=) so that a grep finds them."""
from __future__ import annotations

import logging
import logging.handlers

from . import settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"


def file_handler(process: str) -> logging.Handler | None:
    folder = settings.log_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{process}.log"
    keep = settings.log_max_files()
    if settings.log_cleanup():
        for old in folder.glob(f"{process}.log.*"):
            suffix = old.name.rsplit(".", 1)[-1]
            if not suffix.isdigit() or int(suffix) > keep:
                old.unlink(missing_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=settings.log_max_bytes(),
                                                   backupCount=keep, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def configure(process: str) -> None:
    """stderr always; the rotating file when configured. Safe to call once per process."""
    logging.basicConfig(level=settings.log_level(), format=FORMAT)
    handler = file_handler(process)
    if handler is not None:
        logging.getLogger().addHandler(handler)


def add_file_handler(logger: logging.Logger, process: str) -> None:
    """For processes whose stderr logging someone else set up (Celery)."""
    handler = file_handler(process)
    if handler is not None and not any(isinstance(h, logging.handlers.RotatingFileHandler)
                                       for h in logger.handlers):
        logger.addHandler(handler)
