"""Market-data collector: the Celery app and the core (see README.md)."""
# The Celery docs' layout: importing the package makes the app available as proj.celery_app,
# so `celery -A proj worker` finds it.
from .celery import app as celery_app

__all__ = ("celery_app",)
