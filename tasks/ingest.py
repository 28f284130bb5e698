"""collector.ingest: a batch of streamed frames -> validate, normalize -> store and fan-out."""
import logging

from proj import collect
from proj.celery import app
from proj.ingest import normalize_frames
from proj.publish import publish_records
from proj.records import CollectorError
from proj.store import InvalidRecord

log = logging.getLogger("collector")


# max_retries=None: a database outage of any length must not lose a batch (acks_late keeps
# the message until this task returns; the backoff is capped).
@app.task(name="collector.ingest", bind=True, ignore_result=True, max_retries=None)
def ingest(self, exchange, frames):
    records, errors = normalize_frames(exchange, frames)
    try:
        try:
            stored = publish_records(records)
        except InvalidRecord:      # a parser bug, not a passing fault: keep the good records
            stored = 0
            for record in records:
                try:
                    stored += publish_records([record])
                except InvalidRecord as exc:
                    errors["bad_schema"] += 1
                    log.error("ingest refused err=bad_schema exchange=%s detail=%s", exchange, exc)
    except Exception as exc:       # the database is away: keep the batch, try again later
        log.warning("ingest will retry exchange=%s frames=%d: %s", exchange, len(frames), exc)
        raise self.retry(countdown=collect.retry_delay(CollectorError("network"), self.request.retries))
    return {"frames": len(frames), "records": len(records), "stored": stored, "errors": dict(errors)}
