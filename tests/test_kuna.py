"""Kuna (API v4, REST only): parsers against the documented examples (tests/data/kuna, see its
README for the doc page of each), the simulator's shapes, and the real HTTP path against it.

Kuna has no recordings in ../shared/fixtures and its v4 docs show no public websocket, so
there is no streaming test here: the websocket rules must say "unsupported".
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from proj.collect import fetch_records
from proj.exchanges import get_exchange
from proj.exchanges.kuna import iso_to_ms
from proj.records import CollectorError
from proj.sim.kuna import KunaExchange
from proj.sim.server import SimServer

from .schema import assert_valid

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "kuna"
RECEIVED = 1710328300000
kuna = get_exchange("kuna")

BOOK = "/v4/order/public/book/BTC_USDT"
TRADES = "/v4/trade/public/book/BTC_USDT"
TICKERS = "/v4/markets/public/tickers"
KUNA_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")   # no trailing zeros
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decimal_key(text: str) -> tuple:
    whole, _, frac = text.partition(".")
    return (len(whole), whole, frac)


# ---- parsers against the documented examples ----------------------------------------------

def test_order_book_from_documented_example():
    book = kuna.parse_rest("order_book", data("order_book_btc_usdt.json"), "BTC/USDT", RECEIVED)
    assert_valid(book)
    assert book == {"type": "order_book", "exchange": "kuna", "symbol": "BTC/USDT",
                    "timestamp": None, "received": RECEIVED, "nonce": None,
                    "bids": [["16700", "0.01"], ["16000", "0.001"]],
                    "asks": [["16950", "0.001"], ["17000", "0.01"]]}
    top = kuna.parse_rest("order_book", data("order_book_btc_usdt.json"), "BTC/USDT", RECEIVED,
                          limit=1)
    assert_valid(top)
    assert top["bids"] == [["16700", "0.01"]] and top["asks"] == [["16950", "0.001"]]


def test_trades_from_documented_example_oldest_first():
    trades = kuna.parse_rest("trades", data("trades_btc_usdt.json"), "BTC/USDT", RECEIVED)
    assert_valid(trades)
    assert trades == [
        {"type": "trade", "exchange": "kuna", "symbol": "BTC/USDT",
         "id": "3e5591ba-2778-4d85-8851-54284045ea44", "timestamp": 1663943441486,
         "received": RECEIVED, "side": "sell", "price": "18649", "amount": "0.6182"},
        {"type": "trade", "exchange": "kuna", "symbol": "BTC/USDT",
         "id": "5c9c0f1e-6b0c-4b5e-9a57-3f0f6d2b7a11", "timestamp": 1663943442001,
         "received": RECEIVED, "side": "buy", "price": "18650", "amount": "0.01"},
    ]
    newest = kuna.parse_rest("trades", data("trades_btc_usdt.json"), "BTC/USDT", RECEIVED, limit=1)
    assert [t["id"] for t in newest] == ["5c9c0f1e-6b0c-4b5e-9a57-3f0f6d2b7a11"]


def test_trades_from_the_api_reference_variant():
    # the reference page shows `type` "Buy"/"Sell" (and `sn`) where the docs page has `side`
    [trade] = kuna.parse_rest("trades", data("trades_btc_usdt_reference.json"), "BTC/USDT",
                              RECEIVED)
    assert_valid(trade)
    assert trade["side"] == "sell" and trade["id"] == "3e5591ba-2778-4d85-8851-54284045ea44"
    assert trade["timestamp"] == 1663943441486


def test_ticker_from_documented_example():
    body = data("tickers_btc_usdt_eth_btc.json")
    ticker = kuna.parse_rest("ticker", body, "BTC/USDT", RECEIVED)
    assert_valid(ticker)
    assert ticker == {"type": "ticker", "exchange": "kuna", "symbol": "BTC/USDT",
                      "timestamp": None, "received": RECEIVED, "bid": "19975", "ask": "19976",
                      "last": "19999", "open": None, "high": "20163", "low": "19883",
                      "volume": "32.131491000001674", "quote_volume": "642635.7276489848",
                      "vwap": None}
    # "The following pair was not traded yesterday": "0" everywhere -> no prices, zero volume
    quiet = kuna.parse_rest("ticker", body, "ETH/BTC", RECEIVED)
    assert_valid(quiet)
    assert [quiet[k] for k in ("bid", "ask", "last", "high", "low")] == [None] * 5
    assert quiet["volume"] == quiet["quote_volume"] == "0"


def test_ticker_of_a_pair_the_answer_lacks_is_exchange_error():
    with pytest.raises(CollectorError) as caught:
        kuna.parse_rest("ticker", data("tickers_btc_usdt_eth_btc.json"), "BTC/UAH", RECEIVED)
    assert caught.value.code == "exchange_error" and "BTC_UAH" in caught.value.detail


@pytest.mark.parametrize("name, words", [
    ("error_argument_validation.json", ["take must not be greater than 100",
                                        "ARGUMENT_VALIDATION_ERROR"]),
    ("error_wrong_level.json", ["level must be one of the following values",
                                "WrongRequestException"]),
    ("error_ip_not_in_white_list.json", ["IP_NOT_IN_WHITE_LIST"]),
    ("error_not_found.json", ["Cannot GET /v4/order/public/book/", "404"]),
])
def test_error_envelopes_are_exchange_error_with_message(name, words):
    body = data(name)
    assert not kuna.is_rate_limit_error(orjson.loads(body))
    for kind in ("order_book", "trades", "ticker"):
        with pytest.raises(CollectorError) as caught:
            kuna.parse_rest(kind, body, "BTC/USDT", RECEIVED)
        assert caught.value.code == "exchange_error"
        assert all(word in caught.value.detail for word in words), caught.value.detail
        assert_valid(caught.value.to_dict())


@pytest.mark.parametrize("doc", [
    {"errors": [{"message": "ThrottlerException: Too Many Requests", "code": "ThrottlerException",
                 "extensions": {"code": "ThrottlerException"}}]},
    {"errors": [{"extensions": {"code": "TOO_MANY_REQUESTS"}, "code": "TOO_MANY_REQUESTS"}]},
    {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
])
def test_too_many_requests_envelopes_are_rate_limited(doc):
    assert kuna.is_rate_limit_error(doc)
    with pytest.raises(CollectorError) as caught:
        kuna.parse_rest("ticker", orjson.dumps(doc), "BTC/USDT", RECEIVED)
    assert caught.value.code == "rate_limited"


@pytest.mark.parametrize("kind, body, code", [
    ("order_book", b"", "bad_json"),
    ("order_book", b'{"data": {"asks": [', "bad_json"),
    ("order_book", b'{"data": {"asks": [[NaN, "1"]], "bids": []}}', "bad_json"),
    ("order_book", b'{"foo": 1}', "bad_schema"),
    ("order_book", b'{"data": {"asks": [{"price": "1", "quantity": "1"}], "bids": []}}',
     "bad_schema"),
    ("order_book", b'{"data": {"asks": [["-1", "1"]], "bids": []}}', "bad_schema"),
    ("order_book", b'{"data": {"asks": [[1.5, "1"]], "bids": []}}', "bad_schema"),
    ("order_book", b'{"data": {"asks": [["2", "1"]], "bids": [["1", "1"], ["1.5", "1"]]}}',
     "bad_schema"),
    ("order_book", b'{"data": {"asks": [["1", "1"]], "bids": [["2", "1"]]}}', "bad_schema"),
    ("trades", b'{"data": {"foo": 1}}', "bad_schema"),
    ("trades", b'{"data": [{"id": "x", "matchPrice": "1", "matchQuantity": "1", '
               b'"createdAt": "yesterday", "side": "Bid"}]}', "bad_schema"),
    ("trades", b'{"data": [{"id": "x", "matchPrice": "1", "matchQuantity": "1", '
               b'"createdAt": "2022-09-23T14:30:41.486Z", "side": "Maybe"}]}', "bad_schema"),
    ("ticker", b'{"data": {"pair": "BTC_USDT"}}', "bad_schema"),
    ("ticker", b'{"data": [{"pair": "BTC_USDT", "price": "1", "high": "-1", "low": "1", '
               b'"baseVolume": "1", "quoteVolume": "1", "bestBidPrice": "1", '
               b'"bestAskPrice": "1"}]}', "bad_schema"),
])
def test_bad_bodies_get_codes(kind, body, code):
    with pytest.raises(CollectorError) as caught:
        kuna.parse_rest(kind, body, "BTC/USDT", RECEIVED)
    assert caught.value.code == code


def test_symbols_map_both_ways():
    assert kuna.to_exchange_symbol("BTC/USDT") == "BTC_USDT"
    assert kuna.to_exchange_symbol("DAY/NIGHT") == "DAY_NIGHT"
    assert kuna.from_exchange_symbol("ETH_BTC") == "ETH/BTC"
    assert kuna.from_exchange_symbol("USDT_UAH") == "USDT/UAH"
    for pair in ("BTCUSDT", "BTC_", "_USDT", "BTC-USDT", None):
        with pytest.raises(CollectorError):
            kuna.from_exchange_symbol(pair)


@pytest.mark.parametrize("kind, limit, expected", [
    ("order_book", None, ("/v4/order/public/book/BTC_USDT", {})),
    ("order_book", 3, ("/v4/order/public/book/BTC_USDT", {"level": 5})),
    ("order_book", 20, ("/v4/order/public/book/BTC_USDT", {"level": 20})),
    ("order_book", 21, ("/v4/order/public/book/BTC_USDT", {"level": 50})),
    ("order_book", 5000, ("/v4/order/public/book/BTC_USDT", {"level": 1000})),
    ("trades", None, ("/v4/trade/public/book/BTC_USDT", {"limit": 100})),
    ("trades", 7, ("/v4/trade/public/book/BTC_USDT", {"limit": 7})),
    ("trades", 500, ("/v4/trade/public/book/BTC_USDT", {"limit": 100})),
    ("ticker", None, ("/v4/markets/public/tickers", {"pairs": "BTC_USDT"})),
])
def test_rest_requests_follow_the_documented_parameters(kind, limit, expected):
    assert kuna.rest_request(kind, "BTC/USDT", None, limit) == expected


@pytest.mark.parametrize("timeframe", ["1m", "1h", "1d", None])
def test_candles_are_unsupported(timeframe):
    with pytest.raises(CollectorError) as caught:
        kuna.rest_request("candles", "BTC/USDT", timeframe, 10)
    assert caught.value.code == "unsupported"


def test_rate_limit_budget():
    assert kuna.rate_limit == (1, 1)    # ccxt's 1000 ms between public calls; Kuna gives no figure
    assert all(kuna.request_weight(kind) == 1 for kind in ("order_book", "trades", "ticker"))
    assert kuna.used_weight({"x-ratelimit-remaining": "5"}) is None


@pytest.mark.parametrize("text, ms", [
    ("2022-09-23T14:30:41.486Z", 1663943441486),
    ("2022-09-23T14:30:41Z", 1663943441000),
    ("2022-09-23T14:30:41.4861234Z", 1663943441486),
    ("2022-09-23T17:30:41.486+03:00", 1663943441486),
    ("2022-09-23T14:30:41.5", 1663943441500),
])
def test_iso_times_to_exact_milliseconds(text, ms):
    assert iso_to_ms(text) == ms


def test_no_public_websocket():
    assert kuna.ws_types == ()
    for rule in (kuna.ws_channels, kuna.ws_subscribe_messages):
        with pytest.raises(CollectorError) as caught:
            rule(["BTC/USDT"], ["trades"])
        assert caught.value.code == "unsupported"
    assert kuna.ws_classify('{"errors": []}') == ("unknown", "")


# ---- the simulator speaks Kuna's documented shapes (checked without the parsers) -------------

def test_simulator_book_shape(fresh_sim):
    answer = requests.get(fresh_sim.url + BOOK, params={"level": 5}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    book = answer.json()["data"]
    assert list(book) == ["asks", "bids"] and len(book["asks"]) == len(book["bids"]) == 5
    for side, descending in (("bids", True), ("asks", False)):
        prices = [decimal_key(p) for p, _ in book[side]]
        assert prices == sorted(prices, reverse=descending) and len(set(prices)) == 5
        assert all(KUNA_NUMBER.fullmatch(v) for level in book[side] for v in level)
    assert decimal_key(book["bids"][0][0]) < decimal_key(book["asks"][0][0])
    full = requests.get(fresh_sim.url + BOOK, timeout=5).json()["data"]
    assert len(full["asks"]) == 1000   # the documented default level


def test_simulator_trades_shape(fresh_sim):
    trades = requests.get(fresh_sim.url + TRADES, params={"limit": 30}, timeout=5).json()["data"]
    assert len(trades) == 30
    for trade in trades:
        assert set(trade) == {"id", "pair", "quoteQuantity", "matchPrice", "matchQuantity",
                              "createdAt", "side"}
        assert trade["pair"] == "BTC_USDT" and trade["side"] in ("Bid", "Ask")
        assert CREATED_AT.fullmatch(trade["createdAt"])
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", trade["id"])
        assert all(KUNA_NUMBER.fullmatch(trade[k]) for k in ("quoteQuantity", "matchPrice",
                                                             "matchQuantity"))
    stamps = [t["createdAt"] for t in trades]
    assert stamps == sorted(stamps, reverse=True)   # newest first
    default = requests.get(fresh_sim.url + TRADES, timeout=5).json()["data"]
    assert len(default) == 25


def test_simulator_tickers_shape(fresh_sim):
    rows = requests.get(fresh_sim.url + TICKERS, params={"pairs": "BTC_USDT,DAY_NIGHT,NO_SUCH"},
                        timeout=5).json()["data"]
    assert [r["pair"] for r in rows] == ["BTC_USDT", "DAY_NIGHT"]
    keys = ["pair", "percentagePriceChange", "price", "equivalentPrice", "high", "low",
            "baseVolume", "quoteVolume", "bestBidPrice", "bestAskPrice", "priceChange"]
    assert all(list(r) == keys for r in rows)
    btc, quiet = rows
    assert decimal_key(btc["bestBidPrice"]) < decimal_key(btc["bestAskPrice"])
    assert decimal_key(btc["low"]) <= decimal_key(btc["price"]) <= decimal_key(btc["high"])
    assert all(quiet[k] == "0" for k in keys[4:])   # the documented "not traded" pair


@pytest.mark.parametrize("path, params, status, code, message", [
    (TRADES, {"limit": 101}, 400, "ARGUMENT_VALIDATION_ERROR", "take must not be greater than 100"),
    (TRADES, {"limit": -1}, 400, "WrongRequestException", "limit must be a positive number"),
    (TRADES, {"limit": "x"}, 400, "WrongRequestException", "limit must be a number"),
    (BOOK, {"level": 7}, 500, "WrongRequestException", "level must be one of the following"),
    ("/v4/order/public/book", {}, 404, "NotFoundException", "Cannot GET /v4/order/public/book"),
])
def test_simulator_documented_errors(fresh_sim, path, params, status, code, message):
    answer = requests.get(fresh_sim.url + path, params=params, timeout=5)
    assert answer.status_code == status
    [error] = answer.json()["errors"]
    assert error["code"] == error["extensions"]["code"] == code and message in error["message"]


# ---- the real HTTP path against the simulator ------------------------------------------------

@pytest.fixture
def kuna_sim(fresh_sim, monkeypatch):
    # Kuna's real budget is 1 request a second: the tests would only wait, not learn more
    monkeypatch.setenv("COLLECTOR_KUNA_RATE_LIMIT", "1000/1")
    return fresh_sim


def fetch(sim, kind, symbol="BTC/USDT", **kwargs):
    kwargs.setdefault("attempts", 1)
    kwargs.setdefault("timeout", 5)
    return fetch_records("kuna", kind, symbol, base_url=sim.url, **kwargs)


@pytest.mark.parametrize("kind, symbol, limit", [
    ("order_book", "BTC/USDT", 10), ("order_book", "BTC/UAH", None), ("trades", "ETH/USDT", 7),
    ("trades", "ETH/BTC", None), ("ticker", "BTC/USDT", None), ("ticker", "USDT/UAH", None),
])
def test_every_type_through_http(kuna_sim, kind, symbol, limit):
    result = fetch(kuna_sim, kind, symbol, limit=limit)
    assert_valid(result)
    assert not (isinstance(result, dict) and "err" in result), result
    if kind == "order_book":
        assert len(result["bids"]) == (limit or 1000) == len(result["asks"])
    if kind == "trades":
        assert len(result) == (limit or 100)
        assert [t["timestamp"] for t in result] == sorted(t["timestamp"] for t in result)
    if kind == "ticker":
        assert result["symbol"] == symbol and result["last"] and result["bid"] and result["volume"]


def test_quiet_pair_ticker_through_http(kuna_sim):
    ticker = fetch(kuna_sim, "ticker", "DAY/NIGHT")
    assert_valid(ticker)
    assert ticker["last"] is None and ticker["volume"] == "0"
    assert fetch(kuna_sim, "trades", "DAY/NIGHT") == []


def test_candles_unsupported_without_a_request(kuna_sim):
    result = fetch(kuna_sim, "candles", timeframe="1h")
    assert result["err"] == "unsupported"
    assert_valid(result)
    assert kuna_sim.request_count() == 0


def test_unknown_pair_is_exchange_error(kuna_sim):
    result = fetch(kuna_sim, "order_book", "BTC/XYZ")
    assert result["err"] == "exchange_error" and result["status"] == 400
    assert "NOT_FOUND" in result["detail"]
    assert_valid(result)


@pytest.mark.parametrize("path, kind, fault, params, code", [
    (BOOK, "order_book", "exchange_error", {}, "exchange_error"),
    (BOOK, "order_book", "exchange_error", {"status": 400, "reason": "Pair is not active",
                                            "response_code": "WrongRequestException"},
     "exchange_error"),
    (TRADES, "trades", "exchange_error", {"status": 500}, "exchange_error"),
    (TICKERS, "ticker", "exchange_error", {}, "exchange_error"),
    (BOOK, "order_book", "nan_json", {}, "bad_json"),
    (TRADES, "trades", "nan_json", {}, "bad_json"),
    (TICKERS, "ticker", "nan_json", {}, "bad_json"),
    (BOOK, "order_book", "wrong_shape", {}, "bad_schema"),
    (TRADES, "trades", "wrong_shape", {}, "bad_schema"),
    (TICKERS, "ticker", "wrong_shape", {}, "bad_schema"),
    (BOOK, "order_book", "crossed", {}, "bad_schema"),
    (TICKERS, "ticker", "crossed", {}, "bad_schema"),
    (BOOK, "order_book", "unsorted", {}, "bad_schema"),
    (BOOK, "order_book", "bad_values", {}, "bad_schema"),
    (TRADES, "trades", "bad_values", {}, "bad_schema"),
    (TICKERS, "ticker", "bad_values", {}, "bad_schema"),
    (BOOK, "order_book", "broken_json", {}, "bad_json"),
    (BOOK, "order_book", "empty", {}, "bad_json"),
    (BOOK, "order_book", "html", {}, "content_type"),
    (BOOK, "order_book", "status", {"status": 503}, "http_status"),
    (BOOK, "order_book", "huge", {}, "too_large"),
    (TRADES, "trades", "huge", {"chunked": True}, "too_large"),
])
def test_faults_in_kuna_shapes_become_error_codes(kuna_sim, path, kind, fault, params, code):
    kuna_sim.set_fault(path, fault, **params)
    result = fetch(kuna_sim, kind)
    assert result["err"] == code, result
    assert_valid(result)
    assert result["exchange"] == "kuna" and result["attempts"] == 1
    if code == "exchange_error":
        assert params.get("reason", "take must not be greater than 100") in result["detail"]
        assert result.get("status") == (params["status"] if "status" in params else None)


def test_unsorted_trades_are_put_in_order(kuna_sim):
    # the "unsorted" fault has no trades variant: order is the parser's job either way
    trades = fetch(kuna_sim, "trades", limit=20)
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)


def test_cli_fetch_against_the_simulator(kuna_sim):
    done = subprocess.run([sys.executable, "-m", "proj", "fetch", "kuna", "order_book", "ETH/USDT",
                           "--limit", "5", "--base-url", kuna_sim.url, "--attempts", "1"],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    book = json.loads(done.stdout)
    assert_valid(book)
    assert book["symbol"] == "ETH/USDT" and len(book["bids"]) == 5


def test_simulator_has_no_kuna_websocket(sim):
    with pytest.raises(KeyError):
        sim.ws_url_for("kuna")


# ---- rate limits last: a 429 pauses every later Kuna request for a moment ------------------

def test_429_is_rate_limited(kuna_sim):
    kuna_sim.set_fault(BOOK, "status", status=429, times=1)
    result = fetch(kuna_sim, "order_book")
    assert result["err"] == "rate_limited" and result["status"] == 429
    assert_valid(result)


def test_429_in_kuna_envelope_is_rate_limited(kuna_sim):
    kuna_sim.set_fault(TICKERS, "exchange_error", status=429, times=1)
    body = requests.get(kuna_sim.url + TICKERS, params={"pairs": "BTC_USDT"}, timeout=5)
    assert body.status_code == 429 and body.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    kuna_sim.set_fault(TICKERS, "exchange_error", status=429, times=1)
    result = fetch(kuna_sim, "ticker")
    assert result["err"] == "rate_limited" and result["status"] == 429
    assert_valid(result)


def test_too_many_requests_inside_http_200_is_rate_limited(kuna_sim):
    kuna_sim.set_fault(TRADES, "exchange_error", reason="ThrottlerException: Too Many Requests",
                       response_code="ThrottlerException", times=1)
    result = fetch(kuna_sim, "trades")
    assert result["err"] == "rate_limited"
    assert "Too Many Requests" in result["detail"]
    assert_valid(result)


def test_simulator_answers_429_itself_past_its_budget(kuna_sim):
    # its own server, with a budget of 2 requests a minute; kuna_sim resets the shared limiter
    with SimServer(port=0, exchanges=[KunaExchange(rate_limit=(2, 60))]) as server:
        results = [fetch(server, "ticker") for _ in range(3)]
    assert [r["type"] for r in results[:2]] == ["ticker", "ticker"]
    assert results[2]["err"] == "rate_limited" and results[2]["status"] == 429
    assert_valid(results)
