"""Kraken spot: REST public market data (https://docs.kraken.com/api/docs/rest-api/, paths
/0/public/{Depth,Trades,Ticker,OHLC}) and websocket v2 (wss://ws.kraken.com/v2).

REST
- Requests name the pair by its altname (XBTUSD, XDGUSD, ETHXBT, XBTUSDT); every answer is
  {"error": [...], "result": {...}} and the result is keyed by the pair's CANONICAL name,
  which for the legacy assets differs (XBTUSD is answered as XXBTZUSD, USDTUSD as USDTZUSD,
  XBTUSDT as XBTUSDT): the parsers take the one key that is not the "last" cursor.
- A non-empty error list is an error, whatever the HTTP status (Kraken says "unknown asset
  pair" with HTTP 200). Entries are "<severity><category>:<message>"; only E (error) entries
  count, W (warning) entries beside a result are not failures. "EAPI:Rate limit exceeded",
  "EGeneral:Too many requests" and "EService:Throttled" mean too many requests.
- Prices and volumes are strings; times are numbers of seconds: integers (Depth level times,
  OHLC open times) or JSON floats with up to 7 decimals (Trades: 1762795433.9717445). A float
  is turned into milliseconds from its shortest repr, digit by digit (no float arithmetic).
  A double holds these 10-digit second counts to ~2.4e-7 s, so the millisecond is the one
  of the recorded text unless that text lies closer than that to a millisecond boundary
  (...433.9999999 may read as ...434.0): then it is 1 ms late at most. On the 1000 recorded
  trades it is exact (tests/test_kraken.py checks them against the text).
- Trades rows are [price, volume, time, "b"/"s" (the taker's side), "m"/"l", misc,
  trade_id]; rows of the older API have no trade_id: their id is then built from the time,
  price and volume ("1762795433.9717445_105433.6_0.00027625"), stable across polls but not
  unique if two fills share all three.
- Depth levels are [price, volume, time]; the book has no time of its own (the level times
  are when each level last changed), so its timestamp is null. OHLC rows are
  [time, open, high, low, close, vwap, volume, count], the last row the running candle.
  Ticker: a/b [price, whole lot volume, lot volume], c [last price, lot volume], v/p/t/l/h
  [today, last 24 h], o today's opening price (since 00:00 UTC, not 24 h ago: the record's
  24 h `open` is null), no time, no quote volume.
- Budget: Kraken's public endpoints are limited per IP (and per pair for Trades and OHLC);
  its support article "What are the API rate limits?" (support.kraken.com/articles/206548367)
  says calling them at 1 per second or less stays within the limits: rate_limit = (1, 1).

Websocket v2
- Subscribe {"method": "subscribe", "params": {"channel": "trade"|"book", "symbol":
  ["BTC/USD"]}}; v2 names pairs BASE/QUOTE with BTC and DOGE (not XBT, XDG). Acks are
  {"method": "subscribe", "success": true, "result": {"channel", "symbol", ...}}; refusals
  {"method": "subscribe", "success": false, "error": "Currency pair not supported XBT/USD"}.
- Data: {"channel": "trade", "type": "snapshot"|"update", "data": [{symbol, side (taker),
  price, qty, ord_type, trade_id, timestamp (RFC 3339)}]} and {"channel": "book", "type":
  "snapshot"|"update", "data": [{symbol, bids, asks, checksum, timestamp}]}. Only book
  snapshots are order_book records (one on subscribing); updates are incremental and give no
  record, but they are data frames all the same, so the book channel is not silent.
- Prices and quantities are JSON numbers written with their exact decimals (105944.20,
  0.00012460). orjson would turn them into floats, so parse_ws decodes with the standard
  json module and parse_float=str, which keeps each number's text: one reused decoder,
  ~3x orjson's time. (orjson would be exact too for frames whose numbers all have at most 15
  significant digits and no exponent, since the double's repr then gives the same decimal,
  but making sure of that from the text costs what it saves.)
- {"channel": "heartbeat"} about once a second when nothing else is sent; {"channel":
  "status"} on connecting and when the engine's state changes; the client may send
  {"method": "ping"} and gets {"method": "pong"}. Kraken has no "please reconnect" frame: a
  connection it ends is closed, which the streamer handles like any other loss.
"""
from __future__ import annotations

import calendar
import functools
import json
import re
from operator import itemgetter

import orjson

from ..records import (MIN_MS, CollectorError, bad_schema, canon_decimal, canon_optional_amount,
                       canon_levels, canon_optional_price,
                       canon_price)
from .base import _SHAPE_ERRORS, Exchange, _check_all, _shape_error

# Kraken's legacy X-/Z-prefixed asset names, and the assets whose names differ from the
# common ones. The websocket v2 and the unified symbols use the common names.
_LEGACY = {
    "XXBT": "XBT", "XETH": "ETH", "XLTC": "LTC", "XXRP": "XRP", "XXLM": "XLM", "XXMR": "XMR",
    "XZEC": "ZEC", "XETC": "ETC", "XREP": "REP", "XMLN": "MLN", "XXDG": "XDG", "XICN": "ICN",
    "XNMC": "NMC", "XXVN": "XVN", "XDAO": "DAO",
    "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY", "ZAUD": "AUD",
    "ZKRW": "KRW",
}
_TO_COMMON = {"XBT": "BTC", "XDG": "DOGE"}
_TO_KRAKEN = {common: kraken for kraken, common in _TO_COMMON.items()}
# Quote currencies of Kraken's altnames, longest first ("USDT" before "USD").
# Only real quote currencies: a coin that ends like one (TUSD, RLUSD) would split BATUSD as
# BA/TUSD, so such coins are bases only here.
_QUOTES = tuple(sorted((
    "USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF", "AED", "USDT", "USDC", "USDG", "USDQ",
    "USDR", "EURQ", "EURR", "DAI", "DOT", "XBT", "ETH",
), key=len, reverse=True))
_LEGACY_QUOTES = tuple(name for name in _LEGACY if name[1:] in _QUOTES)

TRANSIENT_MESSAGES = ("EService:Unavailable", "EService:Busy", "EGeneral:Internal error",
                      "EService:Deadline elapsed")
RATE_LIMIT_MESSAGES = ("EAPI:Rate limit exceeded", "EGeneral:Too many requests",
                       "EService:Throttled")
MAX_DEPTH = 500          # Depth `count`: 1..500 (Kraken's default 100)
MAX_TRADES = 1000        # Trades `count`: 1..1000 (and the default: the last 1000)
WS_BOOK_DEPTH = 25       # book subscription depth: one of 10, 25, 100, 500, 1000


class Kraken(Exchange):
    name = "kraken"
    rest_url = "https://api.kraken.com"
    # OHLC `interval` in minutes: 1, 5, 15, 30, 60, 240, 1440, 10080, 21600 (15 days, which
    # has no unified timeframe); 3m, 2h, 6h and 12h do not exist.
    timeframes = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440,
                  "1w": 10080}
    rate_limit = (1, 1.0)   # about one public call per second per IP (see the module doc)
    ws_url = "wss://ws.kraken.com/v2"
    ws_types = ("trades", "order_book")
    # The server sends heartbeats whenever it has nothing else to say; an application ping
    # now and then also shows that our own direction still works.
    ws_heartbeat_interval = 20.0

    # ---- symbols ------------------------------------------------------------------------
    def to_exchange_symbol(self, symbol: str) -> str:
        """BTC/USD -> XBTUSD (the REST altname)."""
        base, _, quote = symbol.upper().partition("/")
        return _TO_KRAKEN.get(base, base) + _TO_KRAKEN.get(quote, quote)

    def from_exchange_symbol(self, market: str) -> str:
        """Any of Kraken's spellings to BASE/QUOTE: XBTUSD, XXBTZUSD, XBT/USD (websocket v1),
        BTC/USD (websocket v2), USDTZUSD, XDGUSD -> BTC/USD ... DOGE/USD."""
        market = market.upper()
        if "/" in market:
            base, _, quote = market.partition("/")
            return f"{_asset(base)}/{_asset(quote)}"
        if len(market) == 8 and market[:4] in _LEGACY and market[4:] in _LEGACY:
            return f"{_asset(market[:4])}/{_asset(market[4:])}"      # XXBTZUSD, XETHXXBT
        for quote in _LEGACY_QUOTES:   # USDTZUSD: a newer base with a legacy quote
            if market.endswith(quote) and len(market) - len(quote) >= 4:
                return f"{_asset(market[:-len(quote)])}/{_asset(quote)}"
        for quote in _QUOTES:
            if market.endswith(quote) and len(market) > len(quote):
                return f"{_asset(market[:-len(quote)])}/{_asset(quote)}"
        raise bad_schema(f"unknown Kraken pair {market!r}")

    def ws_symbol(self, symbol: str) -> str:
        """The websocket v2 name of a unified symbol: the same (v2 says BTC and DOGE too)."""
        base, _, quote = symbol.upper().partition("/")
        return f"{_TO_COMMON.get(base, base)}/{_TO_COMMON.get(quote, quote)}"

    # ---- REST ---------------------------------------------------------------------------
    def rest_request(self, kind, symbol, timeframe=None, limit=None):
        query = {"pair": self.to_exchange_symbol(symbol)}
        if kind == "order_book":
            if limit:
                query["count"] = min(limit, MAX_DEPTH)
            return "/0/public/Depth", query
        if kind == "trades":
            if limit:
                query["count"] = min(limit, MAX_TRADES)
            return "/0/public/Trades", query
        if kind == "ticker":
            return "/0/public/Ticker", query
        if kind == "candles":
            query["interval"] = self.exchange_timeframe(timeframe)
            return "/0/public/OHLC", query   # the last 720 candles; `limit` trims them
        raise CollectorError("unsupported", f"kraken has no {kind!r}")

    def error_reason(self, doc):
        if not isinstance(doc, dict) or not isinstance(doc.get("error"), list):
            return None
        errors = _errors(doc)
        return "; ".join(errors) if errors else None

    def is_rate_limit_error(self, doc) -> bool:
        return isinstance(doc, dict) and any(message.startswith(RATE_LIMIT_MESSAGES)
                                             for message in _errors(doc))

    def is_transient_error(self, doc) -> bool:
        # Kraken reports its own outages inside HTTP 200: worth another attempt
        return isinstance(doc, dict) and any(message.startswith(TRANSIENT_MESSAGES)
                                             for message in _errors(doc))

    def parse_order_book(self, doc, symbol, received, limit):
        book = self._result(doc, symbol)
        bids, asks = book["bids"], book["asks"]
        if limit:
            bids, asks = bids[:limit], asks[:limit]
        return {
            "type": "order_book", "exchange": self.name, "symbol": symbol,
            "timestamp": None, "received": received, "nonce": None,
            "bids": canon_levels(bids, _PRICE_OF, _VOLUME_OF),
            "asks": canon_levels(asks, _PRICE_OF, _VOLUME_OF),
        }

    def parse_trades(self, doc, symbol, received, limit):
        rows = self._result(doc, symbol)
        if not isinstance(rows, list):
            raise bad_schema("kraken Trades: expected a list of trades")
        trades = []
        for row in rows:
            price, amount = canon_price(row[0]), canon_decimal(row[1])
            trade_id = row[6] if len(row) > 6 else None
            if trade_id is None:   # the older API: no id, so one from what identifies the fill
                trade_id = f"{_seconds_text(row[2])}_{price}_{amount}"
            trades.append({
                "type": "trade", "exchange": self.name, "symbol": symbol, "id": str(trade_id),
                "timestamp": seconds_to_ms(row[2]), "received": received,
                "side": _REST_SIDES[row[3]], "price": price, "amount": amount,
            })
        trades.sort(key=lambda t: t["timestamp"])   # Kraken lists oldest first; keep it so
        return trades[-limit:] if limit else trades

    def parse_ticker(self, doc, symbol, received):
        t = self._result(doc, symbol)
        if not isinstance(t, dict):
            raise bad_schema("kraken Ticker: expected an object")
        return {
            "type": "ticker", "exchange": self.name, "symbol": symbol,
            "timestamp": None, "received": received,
            "bid": canon_optional_price(t["b"][0]), "ask": canon_optional_price(t["a"][0]),
            "last": canon_optional_price(t["c"][0]),
            "open": None,   # "o" is today's open (00:00 UTC), not the 24 h window's
            "high": canon_optional_price(t["h"][1]), "low": canon_optional_price(t["l"][1]),
            "volume": canon_optional_amount(t["v"][1]), "quote_volume": None,
            "vwap": canon_optional_price(t["p"][1]),
        }

    def parse_candles(self, doc, symbol, received, timeframe, limit):
        rows = self._result(doc, symbol)
        if not isinstance(rows, list):
            raise bad_schema("kraken OHLC: expected a list of candles")
        candles = [{
            "type": "candle", "exchange": self.name, "symbol": symbol, "timeframe": timeframe,
            "timestamp": seconds_to_ms(row[0]), "received": received,
            "open": canon_price(row[1]), "high": canon_price(row[2]),
            "low": canon_price(row[3]), "close": canon_price(row[4]),
            "volume": canon_decimal(row[6]), "trades": _count(row[7]),
        } for row in rows]
        candles.sort(key=lambda c: c["timestamp"])
        return candles[-limit:] if limit else candles

    def _result(self, doc, symbol: str):
        """The one pair's part of {"error": [], "result": {"XXBTZUSD": ..., "last": ...}}."""
        result = doc["result"]
        if not isinstance(result, dict):
            raise bad_schema("kraken: result is not an object")
        keys = [key for key in result if key != "last"]
        if len(keys) != 1:
            raise bad_schema(f"kraken: expected one pair in the result, got {keys[:5]}")
        try:
            answered = self.from_exchange_symbol(keys[0])
        except CollectorError:
            answered = None   # a pair we cannot spell: trust that it is the one we asked for
        if answered is not None and answered != self.ws_symbol(symbol):
            raise bad_schema(f"kraken answered for {keys[0]} ({answered}), not {symbol}")
        return result[keys[0]]

    # ---- websocket ----------------------------------------------------------------------
    def ws_channels(self, symbols, types):
        return [f"{_WS_CHANNELS[kind]}:{self.ws_symbol(symbol)}"
                for kind in types for symbol in symbols]

    def ws_subscribe_messages(self, symbols, types):
        messages = []
        for kind in types:
            params = {"channel": _WS_CHANNELS[kind],
                      "symbol": [self.ws_symbol(symbol) for symbol in symbols]}
            if kind == "order_book":
                params["depth"] = WS_BOOK_DEPTH
            messages.append(orjson.dumps({"method": "subscribe", "params": params}).decode())
        return messages

    def ws_heartbeat_message(self):
        return '{"method":"ping"}'

    def ws_classify(self, text):
        # Regexes, not a parse. Pushed frames start with their "channel" (the fast path: an
        # anchored match, the payload is never scanned); answers to requests carry "method",
        # and their "result" names a channel too, so method goes first on the general path.
        first = _LEADING_CHANNEL_RE.match(text)
        if first is not None:
            return self._pushed(first.group(1), text)
        method = _METHOD_RE.search(text)
        if method:
            name = method.group(1)
            if name == "pong":
                return "heartbeat", ""
            result = _RESULT_RE.search(text)
            channel = ""
            if result:   # the subscription's channel, named as ws_channels names it
                named = _CHANNEL_RE.search(result.group(1))
                symbol = _SYMBOL_RE.search(result.group(1))
                if named and symbol:
                    channel = f"{named.group(1)}:{symbol.group(1)}"
            if _SUCCESS_RE.search(text) and not _ERROR_RE.search(text):
                return "ack", channel
            return "error", channel
        match = _CHANNEL_RE.search(text)
        if match is None:
            return ("error" if _ERROR_RE.search(text) else "unknown"), ""
        return self._pushed(match.group(1), text)

    @staticmethod
    def _pushed(channel: str, text: str) -> tuple[str, str]:
        if channel in _DATA_CHANNELS:
            symbol = _SYMBOL_RE.search(text)
            # book updates are incremental: they keep the channel alive but make no records
            what = "alive" if channel == "book" and _UPDATE_RE.search(text, 0, 120) else "data"
            return what, f"{channel}:{symbol.group(1)}" if symbol else channel
        return _WS_CONTROL.get(channel, "unknown"), ""

    def _ws_unified(self, name) -> str:
        """A websocket pair name to the unified symbol (remembered: a stream has few)."""
        unified = _WS_NAMES.get(name)
        if unified is None:
            if not isinstance(name, str):
                raise bad_schema(f"kraken: bad symbol {name!r:.40}")
            unified = self.from_exchange_symbol(name)
            if len(_WS_NAMES) < 10_000:
                _WS_NAMES[name] = unified
        return unified

    def parse_ws(self, text, received):
        """As Exchange.parse_ws, but numbers keep their exact text (see the module doc)."""
        doc = decode_exact_json(text)
        try:     # as `with _shape_errors(...)`, without a context manager's cost on every frame
            records = self.parse_ws_doc(doc, received)
        except CollectorError:
            raise
        except _SHAPE_ERRORS as exc:
            raise _shape_error(f"{self.name} websocket frame", exc) from None
        return _check_all(records)

    def parse_ws_doc(self, doc, received):
        """A frame decoded with decode_exact_json (numbers as their text) to records."""
        channel, kind, data = doc["channel"], doc["type"], doc["data"]
        if kind not in ("snapshot", "update") or not isinstance(data, list):
            raise bad_schema(f"unexpected kraken {channel!r} frame of type {kind!r}")
        if channel == "trade":
            return [{
                "type": "trade", "exchange": self.name,
                "symbol": self._ws_unified(t["symbol"]), "id": str(t["trade_id"]),
                "timestamp": rfc3339_ms(t["timestamp"]), "received": received,
                "side": _WS_SIDES[t["side"]],
                "price": canon_price(exact_number(t["price"])),
                "amount": canon_decimal(exact_number(t["qty"])),
            } for t in data]
        if channel == "book":
            if kind == "update":
                return []   # changes to a book we do not keep: not a snapshot, no record
            return [{
                "type": "order_book", "exchange": self.name,
                "symbol": self._ws_unified(b["symbol"]),
                "timestamp": rfc3339_ms(b["timestamp"]) if b.get("timestamp") else None,
                "received": received, "nonce": None,
                "bids": _ws_levels(b["bids"]), "asks": _ws_levels(b["asks"]),
            } for b in data]
        raise bad_schema(f"unexpected kraken frame on channel {channel!r}")


# ---- helpers (pure) ------------------------------------------------------------------------

def _asset(name: str) -> str:
    name = _LEGACY.get(name, name)
    return _TO_COMMON.get(name, name)


def _errors(doc: dict) -> list[str]:
    """The error entries of the envelope (warnings, "W...", are not errors)."""
    errors = doc.get("error")
    if not isinstance(errors, list):
        return []
    return [str(e) for e in errors if not str(e).startswith("W")]


def _count(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_schema(f"kraken: bad trade count {value!r:.40}")
    return value


_EXPONENT_RE = re.compile(r"([0-9]+)(?:\.([0-9]*))?[eE]([+-]?[0-9]+)")
MAX_EXPONENT = 40
_SECONDS_RE = re.compile(r"(\d+)(?:\.(\d*))?")


def exact_number(text):
    """A JSON number's text (as decode_exact_json keeps it) in plain decimal notation:
    "1.5e-05" -> "0.000015", exactly. Other values pass through for the canon_* checks."""
    if not isinstance(text, str) or ("e" not in text and "E" not in text):
        return text
    match = _EXPONENT_RE.fullmatch(text)
    if match is None:
        return text
    whole, fraction = match.group(1), match.group(2) or ""
    if len(match.group(3)) > 3 or abs(int(match.group(3))) > MAX_EXPONENT:
        raise bad_schema(f"kraken: number out of range {text[:40]!r}")   # no price is 1e200000000
    exponent = int(match.group(3))
    digits, point = whole + fraction, len(whole) + exponent
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return f"{digits[:point]}.{digits[point:]}"


def _seconds_text(value) -> str:
    """A time in seconds as decimal text: floats by their shortest repr (see the module doc)."""
    if isinstance(value, bool):
        raise bad_schema(f"not a time: {value!r}")
    if isinstance(value, float):
        return exact_number(repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return exact_number(value)
    raise bad_schema(f"not a time: {value!r:.40}")


def seconds_to_ms(value) -> int:
    """Seconds (int, float or decimal string) to integer milliseconds, truncated, without
    float arithmetic: 1762795433.9717445 -> 1762795433971."""
    match = _SECONDS_RE.fullmatch(_seconds_text(value))
    if match is None:
        raise bad_schema(f"not a time in seconds: {value!r:.40}")
    whole, fraction = match.group(1), match.group(2) or ""
    ms = int(whole) * 1000 + int((fraction + "000")[:3])
    if ms < MIN_MS:
        raise bad_schema(f"time before 2009: {value!r}")
    return ms


_RFC3339_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                         r"(?:([Zz])|([+-])(\d{2}):(\d{2}))")


@functools.lru_cache(maxsize=4096)
def _utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise bad_schema(f"not an RFC 3339 time: {year}-{month}-{day} {hour}:{minute}:{second}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


@functools.lru_cache(maxsize=4096)
def _utc_prefix_seconds(prefix: str) -> int | None:
    """"2023-10-06T17:35:55" -> its Unix time, or None if it is not of that form."""
    match = _RFC3339_RE.fullmatch(prefix + "Z")
    return None if match is None else _utc_seconds(*map(int, match.groups()[:6]))


def rfc3339_ms(text) -> int:
    """"2023-10-06T17:35:55.440295Z" -> 1696613755440 (truncated to the millisecond)."""
    if isinstance(text, str) and len(text) >= 20 and text[-1] in "Zz":   # the usual form, fast
        dot = text[19] == "."
        fraction = text[20:-1] if dot else text[19:-1]
        if (fraction.isascii() and fraction.isdigit()) if dot else text[19] in "Zz":
            seconds = _utc_prefix_seconds(text[:19])
            if seconds is not None:
                ms = seconds * 1000 + (int((fraction + "00")[:3]) if fraction else 0)
                if ms < MIN_MS:
                    raise bad_schema(f"time before 2009: {text!r}")
                return ms
    match = _RFC3339_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad_schema(f"not an RFC 3339 time: {text!r:.40}")
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    seconds = _utc_seconds(int(year), int(month), int(day), int(hour), int(minute), int(second))
    if sign:   # an offset east of UTC is earlier in UTC
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds -= offset if sign == "+" else -offset
    ms = seconds * 1000 + (int((fraction + "00")[:3]) if fraction else 0)
    if ms < MIN_MS:
        raise bad_schema(f"time before 2009: {text!r}")
    return ms


def _ws_levels(side) -> list:
    """[[canon_price(exact_number(level["price"])), canon_decimal(exact_number(level["qty"]))]
    for level in side], whole columns at a time when it can: numbers kept as their text
    (decode_exact_json) that canon_column accepts have no exponent, so exact_number would
    return them unchanged."""
    return canon_levels(side, _WS_PRICE, _WS_QTY, exact=exact_number)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# json.loads(text, parse_float=str, ...) builds a decoder on every call; for a str without a
# byte-order mark it is exactly this one's decode()
_EXACT_DECODER = json.JSONDecoder(parse_float=str, parse_constant=_refuse_constant)


def decode_exact_json(text):
    """JSON with every non-integer number kept as its text ("105944.20"), not a float.
    Strict like decode_json: NaN and Infinity are refused, and so is invalid UTF-8."""
    if text and type(text) is str and not text.startswith("\ufeff"):
        try:
            return _EXACT_DECODER.decode(text)     # the hot path: no strip() copy
        except (ValueError, RecursionError) as exc:
            if text.strip():
                raise CollectorError("bad_json", str(exc)) from None
    if not text or not text.strip():
        raise CollectorError("bad_json", "empty frame")
    try:
        return json.loads(text, parse_float=str, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, UnicodeDecodeError
        raise CollectorError("bad_json", str(exc)) from None


_WS_NAMES: dict[str, str] = {}
_WS_PRICE, _WS_QTY = itemgetter("price"), itemgetter("qty")   # websocket book levels
_PRICE_OF, _VOLUME_OF = itemgetter(0), itemgetter(1)   # REST Depth levels: [price, volume, time]
_REST_SIDES = {"b": "buy", "s": "sell"}
_WS_SIDES = {"buy": "buy", "sell": "sell"}
_WS_CHANNELS = {"trades": "trade", "order_book": "book"}
_DATA_CHANNELS = frozenset(_WS_CHANNELS.values())
_WS_CONTROL = {"heartbeat": "heartbeat", "status": "ack"}
_METHOD_RE = re.compile(r'"method"\s*:\s*"([^"]*)"')
_CHANNEL_RE = re.compile(r'"channel"\s*:\s*"([^"]*)"')
_LEADING_CHANNEL_RE = re.compile(r'\s*\{\s*"channel"\s*:\s*"([^"]*)"')
_UPDATE_RE = re.compile(r'"type"\s*:\s*"update"')
_SYMBOL_RE = re.compile(r'"symbol"\s*:\s*"([^"]*)"')
_RESULT_RE = re.compile(r'"result"\s*:\s*\{([^{}]*)\}')
_SUCCESS_RE = re.compile(r'"success"\s*:\s*true')
_ERROR_RE = re.compile(r'"error"\s*:\s*"')

EXCHANGE = Kraken()
