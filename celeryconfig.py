"""Every Celery setting of the collector (read by proj/celery.py via config_from_object).

Values come from the environment through proj.settings; with nothing set, the broker,
results and store are files under var/ so that one machine needs nothing installed.
"""
import os
from datetime import timedelta

from kombu import Exchange, Queue

from proj import settings
from proj.config import beat_schedule as _beat_schedule

_data = settings.data_dir()

broker_url = settings.broker_url()
result_backend = settings.result_backend()

if broker_url.startswith("filesystem://"):
    broker_transport = "proj.filesystem_broker:Transport"   # kombu's, with an atomic put
    _broker_dir = _data / "broker"
    broker_transport_options = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.05,
    }
    for _key in ("data_folder_in", "control_folder"):
        os.makedirs(broker_transport_options[_key], exist_ok=True)
if result_backend.startswith("file://"):
    os.makedirs(result_backend[len("file://"):], exist_ok=True)

broker_connection_retry_on_startup = True
# A backstop: no task may hang a worker process; fetches end long before on their deadline.
task_time_limit = 600

# JSON only: a broker message must never be able to run code.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# A task is acknowledged after it ran, and given back if its worker dies mid-way: the
# writes it makes are idempotent, so running it twice is harmless; losing it is not.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1   # a poll waits in the broker, not behind a busy process
result_expires = 3600
task_ignore_result = False
# Task events stay off, as Celery ships them: Flower turns the workers' events (received,
# started, succeeded) on while it runs (its enable_events, on by default). Measured here, they
# cost the ingest path about a third of its throughput at 100 frames a task, and "sent" events
# a fifth of a poll's worker CPU (bench ingest, bench polls): a message per step for RabbitMQ
# to route and a process to send.
worker_send_task_events = False
task_send_sent_event = False

# Backend requests use Celery's default queue name, so that a backend's plain
# Celery(broker=..., backend=...) reaches collector.fetch with send_task and no routing.
task_default_queue = "celery"
task_queues = (
    Queue("celery", Exchange("celery"), routing_key="celery"),     # backend request-response
    Queue("poll", Exchange("poll"), routing_key="poll"),           # beat polls: fetch, validate
    Queue("publish", Exchange("publish"), routing_key="publish"),  # store writes
    Queue("ingest", Exchange("ingest"), routing_key="ingest"),     # streamed frame batches
)
task_routes = {
    "collector.fetch": {"queue": "celery"},
    "collector.poll": {"queue": "poll"},
    "collector.poll.fetch": {"queue": "poll"},
    "collector.poll.validate": {"queue": "poll"},
    "collector.poll.publish": {"queue": "publish"},
    "collector.ingest": {"queue": "ingest"},
    "collector.health_check": {"queue": "poll"},
}

imports = ("tasks.fetch", "tasks.poll", "tasks.ingest")

beat_schedule = _beat_schedule(settings.collectors_file())
beat_schedule["health check"] = {
    "task": "collector.health_check",
    "schedule": timedelta(seconds=settings.health_check_interval()),
    "options": {"expires": settings.health_check_interval()},
}
beat_schedule_filename = str(_data / "celerybeat-schedule")
