"""Market-data collector: the Celery app (proj.celery) and the core (see README.md).

Empty on purpose: importing the parsers or records must not load Celery; `celery -A proj`
finds the app in proj.celery by itself.
"""
