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
from proj.health import check_health, record_poll
from proj.publish import get_state, publish_records
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
    poll = {"exchange": raw["exchange"], "type": raw["type"], "symbol": raw["symbol"]}
    try:
        result = collect.normalize(raw)
    except CollectorError as error:
        return error.to_dict(attempts=1, **poll)
    return {**poll, "records": result if isinstance(result, list) else [result]}


# max_retries=None: a database outage of any length must not lose a poll's data
@app.task(name="collector.poll.publish", bind=True, max_retries=None)
def publish(self, outcome):
    if is_error(outcome):
        metrics.count_error(outcome.get("exchange"), outcome["err"])
        _record_poll(outcome, outcome["err"])
        log.warning("poll failed err=%s exchange=%s symbol=%s type=%s detail=%s",
                    outcome["err"], outcome.get("exchange"), outcome.get("symbol"),
                    outcome.get("type"), outcome.get("detail", ""))
        return outcome
    records = outcome["records"]
    try:
        stored = publish_records(records)
    except InvalidRecord as exc:   # a bug upstream, not a passing fault: do not retry
        log.error("publish refused err=bad_schema detail=%s", exc)
        _record_poll(outcome, "bad_schema")
        return CollectorError("bad_schema", str(exc)).to_dict()
    except Exception as exc:       # the database is away: keep the data, try again later
        log.warning("publish will retry: %s", exc)
        raise self.retry(countdown=collect.retry_delay(CollectorError("network"), self.request.retries))
    _record_poll(outcome, None)
    return {"stored": stored, "received": len(records)}


def _record_poll(outcome: dict, error: str | None) -> None:
    """The poll's heartbeat for the health check; best effort, never the data path's fault."""
    try:
        record_poll(get_state(), outcome.get("exchange"), outcome.get("type"),
                    outcome.get("symbol"), error)
    except Exception as exc:
        log.error("poll heartbeat not recorded: %s", exc)


@app.task(name="collector.health_check", ignore_result=True)
def health_check():
    """Beat runs this every DEFAULT_HEALTH_CHECK_INTERVAL seconds."""
    report = check_health(get_state())
    return report["statistics"]
