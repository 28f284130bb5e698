"""Streamers: long-lived websocket connections that push raw frames to the workers as Celery
tasks, in batches. They never parse beyond what routing needs and never write the store."""
