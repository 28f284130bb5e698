"""The Celery app, laid out as Celery's own docs do; every setting is in celeryconfig.py."""
from celery import Celery

app = Celery("proj")
app.config_from_object("celeryconfig")
