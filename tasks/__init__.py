"""Celery tasks: thin wrappers that call proj.collect and proj.store."""
