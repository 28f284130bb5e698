"""Coinbase Advanced Trade: parsers against real recorded payloads (../shared/fixtures/coinbase),
the real HTTP path against the simulator, and the console streamer against the simulator's
websocket."""
import collections
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from proj.collect import fetch_records
from proj.exchanges import get_exchange
from proj.exchanges.coinbase import Coinbase
from proj.records import CollectorError
from proj.sim.coinbase import RATE_LIMIT_PAGE

from .schema import FIXTURES, assert_valid, fixture_bytes

ROOT = Path(__file__).resolve().parent.parent
coinbase = get_exchange("coinbase")
RECEIVED = 1786309550000
API = "/api/v3/brokerage/market"


def ms(text: str) -> int:
    """An independent RFC 3339 reading (datetime, microseconds) for the expected values."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    at = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    return int(at.timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))


def frame(name: str) -> str:
    return fixture_bytes(f"coinbase/{name}").decode()


# ---- REST parsers ----------------------------------------------------------------------------

def test_order_book_from_real_payload():
    book = coinbase.parse_rest("order_book", fixture_bytes("coinbase/rest_at_product_book_btcusd.json"),
                               "BTC/USD", RECEIVED)
    assert_valid(book)
    assert book["timestamp"] == ms("2026-04-07T00:28:59.662782Z") and book["nonce"] is None
    assert book["bids"][:2] == [["68923.66", "0.17189468"], ["68923", "0.05795895"]]
    assert book["asks"][0] == ["68923.67", "0.16987193"] and len(book["asks"]) == 5
    limited = coinbase.parse_rest("order_book", fixture_bytes("coinbase/rest_at_product_book_btcusd.json"),
                                  "BTC/USD", RECEIVED, limit=2)
    assert_valid(limited)
    assert len(limited["bids"]) == 2 and len(limited["asks"]) == 2


def test_trades_are_oldest_first_with_the_taker_side():
    trades = coinbase.parse_rest("trades", fixture_bytes("coinbase/rest_at_market_trades_btcusd.json"),
                                 "BTC/USD", RECEIVED)
    assert_valid(trades)
    assert [t["id"] for t in trades] == ["995098661", "995098662", "995098663"]
    # The recorded best ask is 68923.67: the trades there are "SELL" on Coinbase, i.e. a
    # resting seller was hit by a buyer. The taker bought.
    assert trades[-1] == {"type": "trade", "exchange": "coinbase", "symbol": "BTC/USD",
                          "id": "995098663", "timestamp": ms("2026-04-07T00:28:58.544778Z"),
                          "received": RECEIVED, "side": "buy", "price": "68923.67",
                          "amount": "0.00064"}
    assert trades[0]["side"] == "sell"   # "BUY" on Coinbase
    limited = coinbase.parse_rest("trades", fixture_bytes("coinbase/rest_at_market_trades_btcusd.json"),
                                  "BTC/USD", RECEIVED, limit=1)
    assert [t["id"] for t in limited] == ["995098663"]
    [other] = coinbase.parse_rest("trades", fixture_bytes("coinbase/rest_at_ticker_btcusdc_ccxt.json"),
                                  "BTC/USDC", RECEIVED)
    assert_valid(other)
    assert other["id"] == "635541194" and other["side"] == "sell" and other["price"] == "66363.03"


def test_ticker_from_the_product():
    ticker = coinbase.parse_rest("ticker", fixture_bytes("coinbase/rest_at_product_btcusd.json"),
                                 "BTC/USD", RECEIVED)
    assert_valid(ticker)
    assert ticker["last"] == "68923.67" and ticker["volume"] == "11005.02587005"
    assert ticker["quote_volume"] == "758506771.41"
    # best_bid_price / best_ask_price are empty, and this older answer has no high/low
    assert ticker["bid"] is ticker["ask"] is ticker["high"] is ticker["low"] is None
    assert ticker["open"] is ticker["vwap"] is ticker["timestamp"] is None


def test_every_recorded_product_is_a_ticker_and_its_symbol_maps_both_ways():
    products = orjson.loads(fixture_bytes("coinbase/large/rest_at_market_products.json"))["products"]
    assert len(products) == 920
    tickers = []
    for product in products:
        symbol = coinbase.from_exchange_symbol(product["product_id"])
        assert symbol == f"{product['base_currency_id']}/{product['quote_currency_id']}"
        assert coinbase.to_exchange_symbol(symbol) == product["product_id"]
        tickers.append(coinbase.parse_rest("ticker", orjson.dumps(product), symbol, RECEIVED))
    assert_valid(tickers[::23])   # the runtime checks ran on all of them
    btc = tickers[0]
    assert btc["symbol"] == "BTC/USD" and btc["high"] == "65252.99" and btc["low"] == "64675.22"


def test_candles_from_real_payload():
    candles = coinbase.parse_rest("candles", fixture_bytes("coinbase/rest_at_candles_btcusd.json"),
                                  "BTC/USD", RECEIVED, timeframe="1h")
    assert_valid(candles)
    assert [c["timestamp"] for c in candles] == [1712188800000, 1712192400000]   # oldest first
    assert candles[1] == {"type": "candle", "exchange": "coinbase", "symbol": "BTC/USD",
                          "timeframe": "1h", "timestamp": 1712192400000, "received": RECEIVED,
                          "open": "66312.4", "high": "66331.99", "low": "66055.14",
                          "close": "66181.6", "volume": "355.82896243", "trades": None}
    newest = coinbase.parse_rest("candles", fixture_bytes("coinbase/rest_at_candles_btcusd.json"),
                                 "BTC/USD", RECEIVED, timeframe="1h", limit=1)
    assert [c["timestamp"] for c in newest] == [1712192400000]


def test_error_envelope_is_exchange_error_with_its_message():
    with pytest.raises(CollectorError) as caught:
        coinbase.parse_rest("ticker", fixture_bytes("coinbase/rest_at_error_404_invalid_product.json"),
                            "BTC/USD", RECEIVED)
    assert caught.value.code == "exchange_error"
    assert caught.value.detail == "valid product_id is required (NOT_FOUND)"
    assert_valid(caught.value.to_dict())


@pytest.mark.parametrize("body", [
    b'{"error": "RATE_LIMIT_EXCEEDED", "error_details": "", "message": "Too many requests"}',
    b'{"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}',
    b'{"message": "Public rate limit exceeded"}',
])
def test_rate_limit_envelopes_are_rate_limited(body):
    with pytest.raises(CollectorError) as caught:
        coinbase.parse_rest("trades", body, "BTC/USD", RECEIVED)
    assert caught.value.code == "rate_limited"


@pytest.mark.parametrize("kind, body, code", [
    ("order_book", b"", "bad_json"),
    ("order_book", b'{"pricebook": {"bids": [', "bad_json"),
    ("order_book", b'{"pricebook": {"bids": [{"price": NaN, "size": "1"}], "asks": []}}', "bad_json"),
    ("order_book", b'{"foo": 1}', "bad_schema"),
    ("order_book", b'{"pricebook": {"bids": [["1", "2"]], "asks": []}}', "bad_schema"),
    ("order_book", b'{"pricebook": {"bids": [{"price": 1.5, "size": "1"}], "asks": []}}', "bad_schema"),
    ("order_book", b'{"pricebook": {"bids": [{"price": "2", "size": "1"}], '
                   b'"asks": [{"price": "1", "size": "1"}], "time": "2026-04-07T00:28:59Z"}}', "bad_schema"),
    ("order_book", b'{"pricebook": {"bids": [], "asks": [], "time": "2026-04-07 00:28:59"}}', "bad_schema"),
    ("trades", b'{"trades": {"trade_id": "1"}}', "bad_schema"),
    ("trades", b'{"trades": [{"trade_id": "1", "price": "0", "size": "1", "side": "BUY", '
               b'"time": "2026-04-07T00:28:58Z"}]}', "bad_schema"),
    ("trades", b'{"trades": [{"trade_id": "1", "price": "1", "size": "1", "side": "BUY", '
               b'"time": "1970-01-01T00:00:00Z"}]}', "bad_schema"),
    ("ticker", b"[1, 2]", "bad_schema"),
    ("ticker", b'{"product_id": "BTC-USD", "price": "-1"}', "bad_schema"),
    ("ticker", b'{"product_id": "BTC-USD", "best_bid_price": "2", "best_ask_price": "1"}', "bad_schema"),
    ("candles", b'{"candles": [[1712192400, "1", "2", "1", "1", "1"]]}', "bad_schema"),
    ("candles", b'{"candles": [{"start": "1712192400", "low": "3", "high": "2", "open": "2", '
                b'"close": "2", "volume": "1"}]}', "bad_schema"),
])
def test_bad_bodies_get_codes(kind, body, code):
    with pytest.raises(CollectorError) as caught:
        coinbase.parse_rest(kind, body, "BTC/USD", RECEIVED, timeframe="1h")
    assert caught.value.code == code


def test_requests():
    fixed = Coinbase(clock=lambda: 1712192400 + 1234)
    assert fixed.rest_request("order_book", "BTC/USD") == (f"{API}/product_book",
                                                          {"product_id": "BTC-USD"})
    assert fixed.rest_request("order_book", "ETH/BTC", limit=10)[1] == {"product_id": "ETH-BTC",
                                                                       "limit": 10}
    assert fixed.rest_request("trades", "BTC/USD") == (f"{API}/products/BTC-USD/ticker",
                                                      {"limit": 100})
    assert fixed.rest_request("trades", "BTC/USD", limit=5000)[1] == {"limit": 1000}
    assert fixed.rest_request("ticker", "BTC/USDT") == (f"{API}/products/BTC-USDT", {})
    # two hourly candles: the running one (1712192400) and the one before it
    assert fixed.rest_request("candles", "BTC/USD", "1h", 2) == (
        f"{API}/products/BTC-USD/candles",
        {"start": "1712188800", "end": "1712193634", "granularity": "ONE_HOUR", "limit": 2})
    assert fixed.rest_request("candles", "BTC/USD", "1d", 1000)[1]["limit"] == 350
    for timeframe in ("3m", "4h", "12h", "1w"):
        with pytest.raises(CollectorError) as caught:
            fixed.rest_request("candles", "BTC/USD", timeframe)
        assert caught.value.code == "unsupported"


def test_symbols():
    assert coinbase.to_exchange_symbol("BTC/USD") == "BTC-USD"
    assert coinbase.from_exchange_symbol("ETH-USDT") == "ETH/USDT"
    for bad in ("BTCUSD", "BTC-PERP-INTX", "-USD"):
        with pytest.raises(CollectorError):
            coinbase.from_exchange_symbol(bad)


# ---- websocket rules and parsers -------------------------------------------------------------

def test_market_trades_update_flips_the_maker_side():
    text = frame("ws_at_market_trades_update.json")
    assert coinbase.ws_classify(text) == ("data", "market_trades:BTC-USD")
    [trade] = coinbase.parse_ws(text, RECEIVED)
    assert_valid(trade)
    # "SELL" at 65083.67, the best ask of the recorded ticker (ws_at_ticker_snapshot.json):
    # a buyer took it.
    assert trade == {"type": "trade", "exchange": "coinbase", "symbol": "BTC/USD",
                     "id": "1068572091", "timestamp": ms("2026-08-09T21:05:48.167634Z"),
                     "received": RECEIVED, "side": "buy", "price": "65083.67",
                     "amount": "0.01034361"}


def test_market_trades_snapshot_carries_trades_too():
    text = frame("ws_at_market_trades_snapshot.json")
    assert coinbase.ws_classify(text) == ("data", "market_trades:BTC-USD")
    trades = coinbase.parse_ws(text, RECEIVED)
    assert_valid(trades)
    assert len(trades) == 100 and {t["symbol"] for t in trades} == {"BTC/USD"}
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    assert trades[-1]["id"] == "1068572090" and trades[-1]["side"] == "buy"   # "SELL"


def test_ticker_frames():
    text = frame("ws_at_ticker_snapshot.json")
    assert coinbase.ws_classify(text) == ("data", "ticker:BTC-USD")
    [ticker] = coinbase.parse_ws(text, RECEIVED)
    assert_valid(ticker)
    assert ticker == {"type": "ticker", "exchange": "coinbase", "symbol": "BTC/USD",
                      "timestamp": ms("2026-08-09T21:05:48.229198328Z"), "received": RECEIVED,
                      "bid": "65083.66", "ask": "65083.67", "last": "65086.18", "open": None,
                      "high": "65252.99", "low": "64675.22", "volume": "2867.54532609",
                      "quote_volume": None, "vwap": None}
    [update] = coinbase.parse_ws(frame("ws_at_ticker_update.json"), RECEIVED)
    assert_valid(update)
    assert update["symbol"] == "ETH/USD" and update["last"] == "1919.41"


def test_level2_snapshot_is_an_order_book_and_updates_are_not_records():
    text = frame("large/ws_at_l2_data_snapshot_ethusd.json")
    assert coinbase.ws_classify(text) == ("data", "l2_data:ETH-USD")
    [book] = coinbase.parse_ws(text, RECEIVED)   # the runtime checks ran on every level
    assert book["symbol"] == "ETH/USD" and book["nonce"] == 21
    assert book["timestamp"] == ms("2026-08-09T21:05:48.35161Z")
    assert len(book["bids"]) == 6935 and len(book["asks"]) == 16399
    assert book["bids"][0] == ["1919.44", "0.02858092"] and book["asks"][0] == ["1919.49", "0.07814824"]
    assert_valid({**book, "bids": book["bids"][:300], "asks": book["asks"][:300]})
    update = frame("ws_at_l2_data_update_btcusd.json")
    assert coinbase.ws_classify(update) == ("alive", "l2_data:BTC-USD")   # never shipped, not silence
    assert coinbase.parse_ws(update, RECEIVED) == []


def test_every_frame_of_the_recorded_sequence():
    lines = (FIXTURES / "coinbase/sequences/ws_at_all_frames_except_l2_snapshots.jsonl").read_text().splitlines()
    seen = collections.Counter()
    for line in lines:
        what, channel = coinbase.ws_classify(line)
        doc = orjson.loads(line)
        seen[(doc["channel"], what)] += 1
        if what == "data":
            records = coinbase.parse_ws(line, RECEIVED)
            assert records and channel.partition(":")[2] in ("BTC-USD", "ETH-USD")
            assert {coinbase.to_exchange_symbol(r["symbol"]) for r in records} == {channel.partition(":")[2]}
            assert_valid(records)
    assert seen == {("market_trades", "data"): 59, ("ticker", "data"): 160,
                    ("l2_data", "alive"): 773, ("heartbeats", "heartbeat"): 25,
                    ("subscriptions", "ack"): 5, ("candles", "unknown"): 6}


@pytest.mark.parametrize("text, what", [
    (frame("ws_at_heartbeats.json"), "heartbeat"),
    (frame("ws_at_subscriptions.json"), "ack"),
    ('{"type":"error","message":"failure to subscribe"}', "error"),
    ('{"type": "error", "message": "authentication failure"}', "error"),
    (frame("ws_at_subscribe_request_level2.json"), "unknown"),   # what the client sends
    (frame("ws_at_candles_update.json"), "unknown"),                 # not subscribed
    ("not json at all", "unknown"),
])
def test_control_frames_are_classified(text, what):
    # Coinbase has no "please reconnect" frame and no application-level ping/pong: nothing
    # it sends is "reconnect".
    assert coinbase.ws_classify(text)[0] == what


def test_subscriptions_ack_names_what_was_subscribed():
    assert coinbase.ws_classify(frame("ws_at_subscriptions.json")) == (
        "ack", '{"market_trades":["BTC-USD","ETH-USD"]}')


@pytest.mark.parametrize("text, code", [
    ("garbage", "bad_json"),
    ('{"channel":"market_trades","timestamp":"2026-08-09T21:05:48Z","sequence_num":9,"events":[{"type":"update",'
     '"trades":[{"product_id":"BTC-USD","trade_id":"1","size":"1","time":"2026-08-09T21:05:48Z","side":"SELL"}]}]}',
     "bad_schema"),
    ('{"channel":"market_trades","timestamp":"2026-08-09T21:05:48Z","sequence_num":9,"events":[{"type":"update",'
     '"trades":[{"product_id":"BTCUSD","trade_id":"1","price":"1","size":"1","time":"2026-08-09T21:05:48Z",'
     '"side":"SELL"}]}]}', "bad_schema"),
    ('{"channel":"l2_data","timestamp":"2026-08-09T21:05:48Z","sequence_num":3,"events":[{"type":"snapshot",'
     '"product_id":"BTC-USD","updates":[{"side":"ask","event_time":"2026-08-09T21:05:48Z",'
     '"price_level":"1","new_quantity":"1"}]}]}', "bad_schema"),
    ('{"channel":"candles","timestamp":"2026-08-09T21:05:48Z","sequence_num":3,"events":[]}', "bad_schema"),
    ('{"type":"error","message":"failure to subscribe"}', "exchange_error"),
])
def test_bad_frames_get_codes(text, code):
    with pytest.raises(CollectorError) as caught:
        coinbase.parse_ws(text, RECEIVED)
    assert caught.value.code == code


def test_subscriptions():
    messages = coinbase.ws_subscribe_messages(["BTC/USD", "ETH/USD"], ["trades", "order_book"])
    assert messages == [frame("ws_at_subscribe_request_heartbeats.json").strip(),
                        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades"}',
                        frame("ws_at_subscribe_request_level2.json").strip()]
    assert coinbase.ws_channels(["BTC/USD"], ["trades", "order_book", "ticker"]) == [
        "market_trades:BTC-USD", "l2_data:BTC-USD", "ticker:BTC-USD"]   # level2 updates count as alive
    with pytest.raises(CollectorError) as caught:
        coinbase.ws_channels(["BTC/USD"], ["candles"])
    assert caught.value.code == "unsupported"
    assert coinbase.ws_heartbeat_interval is None and coinbase.ws_heartbeat_message() is None


# ---- through the real HTTP path, against the simulator ---------------------------------------

@pytest.mark.parametrize("kind, symbol, params", [
    ("order_book", "BTC/USD", {}), ("order_book", "ETH/BTC", {"limit": 7}),
    ("trades", "ETH/USD", {}), ("trades", "BTC/USDT", {"limit": 5}),
    ("ticker", "BTC/USD", {}), ("ticker", "USDT/USD", {}),
    ("candles", "BTC/USD", {"timeframe": "1m", "limit": 10}),
    ("candles", "ETH/USD", {"timeframe": "1d", "limit": 400}),
    ("candles", "SOL/USD", {"timeframe": "2h"}),
])
def test_every_type_from_the_simulator_is_valid(fresh_sim, kind, symbol, params):
    result = fetch_records("coinbase", kind, symbol, base_url=fresh_sim.url, attempts=1, **params)
    assert_valid(result)
    assert "err" not in (result if isinstance(result, dict) else {}), result
    if kind == "order_book":
        assert len(result["bids"]) == len(result["asks"]) == params.get("limit", 100)
    if kind in ("trades", "candles"):
        assert result and {r["symbol"] for r in result} == {symbol}
        assert [r["timestamp"] for r in result] == sorted(r["timestamp"] for r in result)
    if kind == "trades" and "limit" in params:
        assert len(result) == params["limit"]
    if kind == "candles":
        expected = min(params.get("limit", 300), 350)
        assert len(result) == expected and {c["timeframe"] for c in result} == {params["timeframe"]}
        step = result[1]["timestamp"] - result[0]["timestamp"]
        assert all(b["timestamp"] - a["timestamp"] == step for a, b in zip(result, result[1:]))
    if kind == "ticker":
        assert result["last"] and result["volume"] and result["high"] and result["low"]


def test_an_unoffered_timeframe_is_unsupported_without_a_request(fresh_sim):
    result = fetch_records("coinbase", "candles", "BTC/USD", timeframe="4h",
                           base_url=fresh_sim.url, attempts=1)
    assert result["err"] == "unsupported" and fresh_sim.request_count() == 0
    assert_valid(result)


def test_unknown_product_is_the_exchanges_404_envelope(fresh_sim):
    result = fetch_records("coinbase", "ticker", "FOO/USD", base_url=fresh_sim.url, attempts=3)
    assert result["err"] == "exchange_error" and result["status"] == 404
    assert result["detail"] == "valid product_id is required (NOT_FOUND)"
    assert result["attempts"] == 1   # an answer, not retried
    assert_valid(result)


@pytest.mark.parametrize("status", [200, 400])
def test_exchange_error_envelope_whatever_the_status(fresh_sim, status):
    path = f"{API}/products/BTC-USD/candles"
    fresh_sim.set_fault(path, "exchange_error", status=status, reason="granularity is invalid",
                        response_code="INVALID_ARGUMENT")
    result = fetch_records("coinbase", "candles", "BTC/USD", timeframe="1h",
                           base_url=fresh_sim.url, attempts=1)
    assert result["err"] == "exchange_error", result
    assert result["detail"] == "granularity is invalid (INVALID_ARGUMENT)"
    assert_valid(result)


def test_429_is_rate_limited(fresh_sim):
    path = f"{API}/product_book"
    fresh_sim.set_fault(path, "status", status=429, body=RATE_LIMIT_PAGE,
                        content_type="text/html; charset=utf-8", times=1)
    result = fetch_records("coinbase", "order_book", "BTC/USD", base_url=fresh_sim.url, attempts=1)
    assert result["err"] == "rate_limited" and result["status"] == 429
    assert_valid(result)
    again = fetch_records("coinbase", "order_book", "BTC/USD", base_url=fresh_sim.url, attempts=1)
    assert again["type"] == "order_book"


def test_a_rate_limit_envelope_is_rate_limited_whatever_the_status(fresh_sim):
    fresh_sim.set_fault(f"{API}/products/BTC-USD", "exchange_error", status=403,
                        reason="Too many requests", response_code="RATE_LIMIT_EXCEEDED")
    result = fetch_records("coinbase", "ticker", "BTC/USD", base_url=fresh_sim.url, attempts=1)
    assert result["err"] == "rate_limited" and result["status"] == 403
    assert_valid(result)


@pytest.mark.parametrize("kind, path, fault, params, code", [
    ("order_book", "/product_book", "nan_json", {}, "bad_json"),
    ("order_book", "/product_book", "wrong_shape", {}, "bad_schema"),
    ("order_book", "/product_book", "crossed", {}, "bad_schema"),
    ("order_book", "/product_book", "unsorted", {}, "bad_schema"),
    ("order_book", "/product_book", "bad_values", {}, "bad_schema"),
    ("order_book", "/product_book", "huge", {}, "too_large"),
    ("order_book", "/product_book", "broken_json", {}, "bad_json"),
    ("order_book", "/product_book", "html", {}, "content_type"),
    ("order_book", "/product_book", "status", {"status": 503}, "http_status"),
    ("trades", "/products/BTC-USD/ticker", "nan_json", {}, "bad_json"),
    ("trades", "/products/BTC-USD/ticker", "wrong_shape", {}, "bad_schema"),
    ("trades", "/products/BTC-USD/ticker", "bad_values", {}, "bad_schema"),
    ("trades", "/products/BTC-USD/ticker", "huge", {"chunked": True}, "too_large"),
    ("ticker", "/products/BTC-USD", "wrong_shape", {}, "bad_schema"),
    ("ticker", "/products/BTC-USD", "crossed", {}, "bad_schema"),
    ("ticker", "/products/BTC-USD", "bad_values", {}, "bad_schema"),
    ("candles", "/products/BTC-USD/candles", "wrong_shape", {}, "bad_schema"),
    ("candles", "/products/BTC-USD/candles", "bad_values", {}, "bad_schema"),
    ("candles", "/products/BTC-USD/candles", "nan_json", {}, "bad_json"),
])
def test_faults_in_coinbase_shapes_get_codes(fresh_sim, kind, path, fault, params, code):
    fresh_sim.set_fault(API + path, fault, **params)
    result = fetch_records("coinbase", kind, "BTC/USD", timeframe="1m", base_url=fresh_sim.url,
                           attempts=1, timeout=2)
    assert result["err"] == code, result
    assert_valid(result)


# ---- the websocket, through the console streamer ---------------------------------------------

def run_stream(sim, symbols, types, seconds=4):
    done = subprocess.run(
        [sys.executable, "-m", "proj", "stream", "coinbase", *symbols, "--types", types,
         "--seconds", str(seconds), "--ws-url", sim.ws_url_for("coinbase")],
        cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return [orjson.loads(line) for line in done.stdout.splitlines()], done.stderr.decode()


def test_stream_prints_valid_trades_and_books(sim):
    records, log = run_stream(sim, ["BTC/USDT", "ETH/USD"], "trades,order_book")
    assert_valid([r for r in records if r["type"] != "order_book"])
    books = [r for r in records if r["type"] == "order_book"]
    assert_valid([{**b, "bids": b["bids"][:50], "asks": b["asks"][:50]} for b in books])
    kinds = collections.Counter((r["type"], r["symbol"]) for r in records)
    # the snapshot of each book, and trades (the recent ones of the snapshot, then live ones)
    assert kinds[("order_book", "BTC/USDT")] >= 1 and kinds[("order_book", "ETH/USD")] >= 1
    assert kinds[("trade", "BTC/USDT")] > 0 and kinds[("trade", "ETH/USD")] > 0
    assert set(kinds) == {("order_book", "BTC/USDT"), ("order_book", "ETH/USD"),
                          ("trade", "BTC/USDT"), ("trade", "ETH/USD")}
    assert {t["side"] for t in records if t["type"] == "trade"} <= {"buy", "sell"}
    assert "unexpected frame" not in log   # heartbeats, acks and book updates are understood


def test_stream_prints_valid_tickers(sim):
    records, _ = run_stream(sim, ["BTC/USD"], "ticker", seconds=3)
    assert records and {r["type"] for r in records} == {"ticker"}
    assert_valid(records)


def test_streamer_counts_control_frames_right(sim):
    """In this process: heartbeats, acks and level2 updates are neither data nor errors; a
    garbage fault's frames are counted as errors and skipped."""
    from streamers.connection import Streamer
    frames = []
    streamer = Streamer("coinbase", ["BTC/USD"], ["trades", "order_book"], frames.extend,
                        ws_url=sim.ws_url_for("coinbase"), batch_size=1)
    thread = __import__("threading").Thread(target=streamer.run, kwargs={"seconds": 3.5})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not streamer.stats.last_heartbeat and time.monotonic() < deadline:
            time.sleep(0.05)
        assert streamer.stats.last_heartbeat and streamer.stats.errors == 0
        sim.set_ws_fault("garbage", exchange="coinbase", count=4)
    finally:
        thread.join(15)
    assert not thread.is_alive()
    stats = streamer.stats
    assert stats.connections == 1 and stats.messages_received > 0
    # of the four garbage frames, the binary one and the unknown channel are refused by the
    # streamer; the cut one and the one without a price look like data and fail in the worker
    assert stats.errors == 2
    texts = [text for _, text in frames]
    assert sum('"l2_data"' in t for t in texts) == 1        # the snapshot only
    assert not any('"heartbeats"' in t or '"subscriptions"' in t for t in texts)


def test_level2_snapshot_with_sides_interleaved_keeps_each_sides_order():
    updates = [{"side": side, "event_time": "2026-08-09T21:05:48.35161Z", "price_level": price,
                "new_quantity": quantity}
               for side, price, quantity in (("bid", "1919.44", "0.02858092"), ("offer", "1919.50", "1"),
                                              ("bid", "1919.43", "0.0505"), ("offer", "1919.6", "2.50"))]
    frame = {"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.618125631Z", "sequence_num": 21,
             "events": [{"type": "snapshot", "product_id": "ETH-USD", "updates": updates}]}
    [book] = get_exchange("coinbase").parse_ws(orjson.dumps(frame), 1786309548700)
    assert book["bids"] == [["1919.44", "0.02858092"], ["1919.43", "0.0505"]]
    assert book["asks"] == [["1919.5", "1"], ["1919.6", "2.5"]]
    updates[2]["side"] = "middle"
    with pytest.raises(CollectorError, match="unknown side 'middle'"):
        get_exchange("coinbase").parse_ws(orjson.dumps(frame), 1786309548700)
