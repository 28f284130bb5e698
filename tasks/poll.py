"""The beat poll: collector.poll starts the chain fetch → validate → publish.

Beat sends collector.poll with `expires` = the poll's interval. The fetch step inherits that
deadline, retries included, so a poll that could not start in time is dropped, not run late.
Once fetched, data is never dropped: validate and publish carry no deadline.
An error at any step travels down the chain as an error object and is logged once, at publish.
"""
import logging

from celery import chain

from proj import collect, metrics, settings
from proj.celery import app
from proj.publish import publish_records
from proj.records import CollectorError, is_error
from proj.store import InvalidRecord

log = logging.getLogger("collector")


@app.task(name="collector.poll", bind=True)
def poll(self, exchange, type, symbol, timeframe=None, limit=None):
    deadline = self.request.expires
    steps = chain(
        fetch.s(exchange, type, symbol, timeframe=timeframe, limit=limit).set(expires=deadline),
        validate.s(),
        publish.s(),
    )
    return steps.apply_async().id


# Steps hand their values to the next one directly; storing them as results would fill the
# result backend with every raw body.
@app.task(name="collector.poll.fetch", bind=True, max_retries=None, ignore_result=True)
def fetch(self, exchange, type, symbol, timeframe=None, limit=None):
    attempt = self.request.retries + 1
    try:
        return collect.fetch_raw(exchange, type, symbol, timeframe, limit)
    except CollectorError as error:
        if collect.should_retry(error, attempt, settings.fetch_attempts()):
            collect.log_failure(error, attempt, final=False, exchange=exchange, symbol=symbol,
                                type=type)
            raise self.retry(countdown=collect.retry_delay(error, self.request.retries))
        return error.to_dict(attempts=attempt, exchange=exchange, symbol=symbol, type=type)


@app.task(name="collector.poll.validate", ignore_result=True)
def validate(raw):
    if is_error(raw):
        return raw
    try:
        result = collect.normalize(raw)
    except CollectorError as error:
        return error.to_dict(attempts=1, exchange=raw["exchange"], symbol=raw["symbol"],
                             type=raw["type"])
    return result if isinstance(result, list) else [result]


@app.task(name="collector.poll.publish", bind=True, max_retries=10)
def publish(self, records):
    if is_error(records):
        metrics.count_error(records.get("exchange"), records["err"])
        log.warning("poll failed err=%s exchange=%s symbol=%s type=%s detail=%s",
                    records["err"], records.get("exchange"), records.get("symbol"),
                    records.get("type"), records.get("detail", ""))
        return records
    try:
        stored = publish_records(records)
    except InvalidRecord as exc:   # a bug upstream, not a passing fault: do not retry
        log.error("publish refused err=bad_schema detail=%s", exc)
        return CollectorError("bad_schema", str(exc)).to_dict()
    except Exception as exc:       # the database is away: keep the data, try again later
        log.warning("publish will retry: %s", exc)
        raise self.retry(countdown=collect.retry_delay(CollectorError("network"), self.request.retries))
    return {"stored": stored, "received": len(records)}
