"""The small interface every exchange module implements, and what they all share.

An exchange module (proj/exchanges/<name>.py) defines one subclass of `Exchange` and an
instance named `EXCHANGE`. It knows its REST paths, its symbols both ways, and how to turn
its bodies into records. It does no I/O: bytes in, records or CollectorError out.
"""
from __future__ import annotations

from contextlib import contextmanager

import orjson

from ..records import (CollectorError, bad_schema, check_candle, check_order_book,
                       check_ticker, check_trade)

_CHECKS = {"order_book": check_order_book, "trade": check_trade,
           "ticker": check_ticker, "candle": check_candle}


def decode_json(body: bytes | str):
    """orjson is strict: NaN, Infinity and invalid UTF-8 are refused, as they should be."""
    if body and (type(body) is str or type(body) is bytes):
        try:
            return orjson.loads(body)     # the hot path: no strip() copy of a large frame
        except orjson.JSONDecodeError as exc:
            if body.strip():
                raise CollectorError("bad_json", str(exc)) from None
    if not body or not body.strip():
        raise CollectorError("bad_json", "empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CollectorError("bad_json", str(exc)) from None


class Exchange:
    name: str = ""
    rest_url: str = ""             # scheme://host, replaced by --base-url / COLLECTOR_<NAME>_REST_URL
    timeframes: dict = {}          # unified timeframe -> the exchange's own value

    # ---- what each exchange provides -------------------------------------------------
    def to_exchange_symbol(self, symbol: str) -> str:
        raise NotImplementedError

    def from_exchange_symbol(self, market: str) -> str:
        raise NotImplementedError

    def rest_request(self, kind: str, symbol: str, timeframe: str | None = None,
                     limit: int | None = None) -> tuple[str, dict]:
        """(path, query) for one data type; CollectorError('unsupported') if it has none."""
        raise NotImplementedError

    def error_reason(self, doc) -> str | None:
        """The exchange's own error message if `doc` is its error envelope, else None."""
        return None

    def is_rate_limit_error(self, doc) -> bool:
        """True if the error envelope `doc` says "too many requests" (e.g. OKX code 50011):
        it becomes rate_limited, not exchange_error, whatever the HTTP status."""
        return False

    def is_transient_error(self, doc) -> bool:
        """True if the error envelope `doc` reports a passing outage (Kraken's
        EService:Unavailable inside HTTP 200): exchange_error, but retried."""
        return False

    # ---- rate limits (the shared limiter in proj.ratelimit uses these) ------------------
    rate_limit: tuple | None = None   # (weight, seconds): the public REST budget per IP

    def request_weight(self, kind: str, limit: int | None = None) -> int:
        """What one request of `kind` costs against rate_limit."""
        return 1

    def used_weight(self, headers: dict) -> int | None:
        """Weight the exchange says is used in its current window (lower-case header names),
        e.g. Binance's X-MBX-USED-WEIGHT-1M; None if it does not say."""
        return None

    def parse_order_book(self, doc, symbol: str, received: int, limit: int | None) -> dict:
        raise CollectorError("unsupported", f"{self.name} has no order book")

    def parse_trades(self, doc, symbol: str, received: int, limit: int | None) -> list:
        raise CollectorError("unsupported", f"{self.name} has no trades")

    def parse_ticker(self, doc, symbol: str, received: int) -> dict:
        raise CollectorError("unsupported", f"{self.name} has no ticker")

    def parse_candles(self, doc, symbol: str, received: int, timeframe: str,
                      limit: int | None) -> list:
        raise CollectorError("unsupported", f"{self.name} has no candles")

    # ---- websocket rules (streamers use these; parse_ws runs in the worker) -------------
    ws_url: str = ""                          # replaced by COLLECTOR_<NAME>_WS_URL
    ws_types: tuple = ()                      # data types it streams: "trades", "order_book"
    ws_heartbeat_interval: float | None = None   # seconds between the client's heartbeats

    def ws_connect_url(self, url: str, symbols: list, types: list) -> str:
        """The URL to open; exchanges that subscribe in the URL (Binance) add the streams."""
        return url

    def ws_channels(self, symbols: list, types: list) -> list[str]:
        """The channel names a subscription of symbols × types yields (silence is per channel)."""
        raise CollectorError("unsupported", f"{self.name} has no websocket")

    def ws_subscribe_messages(self, symbols: list, types: list) -> list[str]:
        """Text frames to send after connecting, subscribing every symbol × type."""
        raise CollectorError("unsupported", f"{self.name} has no websocket")

    def ws_heartbeat_message(self) -> str | None:
        return None

    def ws_classify(self, text: str) -> tuple[str, str]:
        """(what, channel) of a frame, cheaply and without normalizing it. `what` is one of
        data (shipped to the workers), alive (the channel's incremental updates: no records,
        but the channel is not silent), heartbeat, ack, reconnect (the server asks for a new
        connection), error, unknown."""
        raise NotImplementedError

    def parse_ws_doc(self, doc, received: int) -> list:
        """A decoded data frame to records (parse_ws checks them)."""
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------
    _known_markets: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._known_markets = {}    # each exchange its own: see unified_symbol

    def unified_symbol(self, market) -> str:
        """from_exchange_symbol(market), remembered: a stream names few markets, in every frame."""
        if type(market) is str:
            symbol = self._known_markets.get(market)
            if symbol is None:
                symbol = self.from_exchange_symbol(market)
                if len(self._known_markets) < 10_000:
                    self._known_markets[market] = symbol
            return symbol
        return self.from_exchange_symbol(market)

    def exchange_timeframe(self, timeframe: str | None):
        if timeframe not in self.timeframes:
            raise CollectorError("unsupported", f"{self.name} has no {timeframe!r} candles "
                                 f"(it has {', '.join(self.timeframes)})")
        return self.timeframes[timeframe]

    def parse_rest(self, kind: str, body: bytes, symbol: str, received: int,
                   timeframe: str | None = None, limit: int | None = None):
        """A REST body to validated records: one dict (book, ticker) or a list (trades, candles)."""
        doc = decode_json(body)
        reason = self.error_reason(doc)
        if reason is not None:
            raise CollectorError("rate_limited" if self.is_rate_limit_error(doc) else "exchange_error",
                                 reason, transient=self.is_transient_error(doc))
        with _shape_errors(f"{self.name} {kind}"):
            if kind == "order_book":
                result = self.parse_order_book(doc, symbol, received, limit)
            elif kind == "trades":
                result = self.parse_trades(doc, symbol, received, limit)
            elif kind == "ticker":
                result = self.parse_ticker(doc, symbol, received)
            elif kind == "candles":
                result = self.parse_candles(doc, symbol, received, timeframe, limit)
            else:
                raise CollectorError("unsupported", f"unknown data type {kind!r}")
        _check_all(result if isinstance(result, list) else [result])
        return result

    def parse_ws(self, text: str | bytes, received: int) -> list:
        """A websocket data frame to validated records. Pure; CollectorError for a bad frame."""
        doc = decode_json(text)
        try:     # as `with _shape_errors(...)`, without a context manager's cost on every frame
            records = self.parse_ws_doc(doc, received)
        except CollectorError:
            raise
        except _SHAPE_ERRORS as exc:
            raise _shape_error(f"{self.name} websocket frame", exc) from None
        return _check_all(records)


def _check_all(records: list) -> list:
    for record in records:
        _CHECKS[record["type"]](record)
    return records


@contextmanager
def _shape_errors(what: str):
    """JSON that is not the shape the exchange documents becomes bad_schema, not a crash."""
    try:
        yield
    except CollectorError:
        raise
    except _SHAPE_ERRORS as exc:
        raise _shape_error(what, exc) from None


_SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError)


def _shape_error(what: str, exc: Exception) -> CollectorError:
    return bad_schema(f"{what}: unexpected shape ({type(exc).__name__}: {exc})")
