"""The Celery app, laid out as Celery's own docs do; every setting is in celeryconfig.py."""
import sys

from celery import Celery
from celery.signals import after_setup_logger

from .logs import add_file_handler

app = Celery("proj")
app.config_from_object("celeryconfig")


@after_setup_logger.connect
def _log_to_file(logger, **kwargs):
    # worker and beat log to stderr as Celery sets up; COLLECTOR_LOG_DIR adds rotating files
    kind = "beat" if "beat" in sys.argv else "worker"
    add_file_handler(logger, kind)
