"""collector.fetch: the backend's request-response task.

A backend without this code calls it by name:
    app.send_task("collector.fetch", args=["bitstamp", "order_book", "BTC/USD"]).get()
and gets the normalized record(s) or an error object {"err": code, ...}; it never raises.
"""
from proj import collect, settings
from proj.celery import app
from proj.records import CollectorError


@app.task(name="collector.fetch", bind=True, max_retries=None)
def fetch(self, exchange, type, symbol, timeframe=None, limit=None, timeout=None,
          attempts=None, base_url=None):
    attempts = max(1, attempts or settings.fetch_attempts())
    attempt = self.request.retries + 1
    try:
        raw = collect.fetch_raw(exchange, type, symbol, timeframe, limit, base_url, timeout)
        return collect.normalize(raw)
    except CollectorError as error:
        context = {"exchange": exchange, "symbol": symbol, "type": type}
        if error.retryable and attempt < attempts:
            collect.log_failure(error, attempt, final=False, **context)
            # back to the broker with a countdown: the worker slot is free while it waits
            raise self.retry(countdown=collect.retry_delay(error, self.request.retries))
        collect.log_failure(error, attempt, final=True, **context)
        return error.to_dict(attempts=attempt, **context)
