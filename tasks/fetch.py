"""collector.fetch: the backend's request-response task.

A backend without this code calls it by name:
    app.send_task("collector.fetch", args=["bitstamp", "order_book", "BTC/USD"]).get()
and gets the normalized record(s) or an error object {"err": code, ...}; it never raises.
"""
import logging

from proj import collect, settings
from proj.celery import app
from proj.records import CollectorError

log = logging.getLogger("collector")


@app.task(name="collector.fetch", bind=True, max_retries=None)
def fetch(self, exchange, type, symbol, timeframe=None, limit=None, timeout=None,
          attempts=None, base_url=None):
    context = {"exchange": exchange, "symbol": symbol, "type": type}
    attempt = self.request.retries + 1
    try:
        collect.check_request(exchange, type, symbol, timeframe, limit, timeout, attempts)
        raw = collect.fetch_raw(exchange, type, symbol, timeframe, limit, base_url, timeout)
        return collect.normalize(raw)
    except CollectorError as error:
        if collect.should_retry(error, attempt, attempts or settings.fetch_attempts()):
            collect.log_failure(error, attempt, final=False, **context)
            # back to the broker with a countdown: the worker slot is free while it waits
            raise self.retry(countdown=collect.retry_delay(error, self.request.retries))
        collect.log_failure(error, attempt, final=True, **context)
        return error.to_dict(attempts=attempt, **context)
    except Exception as exc:   # a bug of ours must still not reach the backend as an exception
        log.exception("fetch crashed exchange=%s symbol=%s type=%s", exchange, symbol, type)
        return CollectorError("unsupported", f"the collector could not serve this request: "
                              f"{type_name(exc)}").to_dict(attempts=attempt, **context)


def type_name(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"
