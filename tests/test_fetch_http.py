"""Every error code, produced by the simulator's matching fault through the real HTTP path."""
import socket
import time

import pytest

from proj.collect import fetch_records

from .schema import assert_valid

BOOK = "/api/v2/order_book/btcusd/"


def fetch_book(sim, **kwargs):
    kwargs.setdefault("attempts", 1)
    kwargs.setdefault("timeout", 2)
    return fetch_records("bitstamp", "order_book", "BTC/USD", base_url=sim.url, **kwargs)


@pytest.mark.parametrize("kind, symbol, params", [
    ("order_book", "BTC/USD", {}), ("trades", "ETH/USD", {}), ("ticker", "BTC/USD", {}),
    ("candles", "BTC/USD", {"timeframe": "1m", "limit": 10}),
])
def test_every_type_from_the_simulator_is_valid(fresh_sim, kind, symbol, params):
    result = fetch_records("bitstamp", kind, symbol, base_url=fresh_sim.url, attempts=1, **params)
    assert_valid(result)
    assert "err" not in (result if isinstance(result, dict) else {})
    if kind == "candles":
        assert len(result) == 10 and all(c["timeframe"] == "1m" for c in result)


@pytest.mark.parametrize("fault, params, code", [
    ("hang", {"seconds": 60}, "timeout"),
    ("slow_body", {"interval": 0.2, "seconds": 60}, "timeout"),
    ("reset", {}, "network"),
    ("status", {"status": 503}, "http_status"),
    ("status", {"status": 404}, "http_status"),
    ("status", {"status": 429, "retry_after": 1}, "rate_limited"),
    ("status", {"status": 418}, "rate_limited"),
    ("html", {}, "content_type"),
    ("broken_json", {}, "bad_json"),
    ("nan_json", {}, "bad_json"),
    ("empty", {}, "bad_json"),
    ("wrong_shape", {}, "bad_schema"),
    ("crossed", {}, "bad_schema"),
    ("unsorted", {}, "bad_schema"),
    ("bad_values", {}, "bad_schema"),
    ("exchange_error", {"reason": "Invalid pair"}, "exchange_error"),
    ("exchange_error", {"reason": "Invalid pair", "status": 400}, "exchange_error"),
    ("huge", {}, "too_large"),
    ("huge", {"chunked": True}, "too_large"),
])
def test_fault_becomes_error_code(fresh_sim, fault, params, code):
    fresh_sim.set_fault(BOOK, fault, **params)
    started = time.monotonic()
    result = fetch_book(fresh_sim, timeout=1)
    assert result["err"] == code, result
    assert_valid(result)
    assert result["attempts"] == 1 and result["exchange"] == "bitstamp"
    if code == "exchange_error":
        assert "Invalid pair" in result["detail"]
    if fault == "status":
        assert result["status"] == params["status"]
    # the hang and the drip last a minute: ending well before that is the deadline's doing
    assert time.monotonic() - started < 20


def test_connection_refused_is_network():
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = fetch_records("bitstamp", "ticker", "BTC/USD", base_url=f"http://127.0.0.1:{port}",
                           attempts=1)
    assert result["err"] == "network"
    assert_valid(result)


def test_retryable_faults_are_retried_and_pass(fresh_sim):
    fresh_sim.set_fault(BOOK, "status", status=502, times=2)
    result = fetch_book(fresh_sim, attempts=3)
    assert result["type"] == "order_book"
    assert fresh_sim.request_count(BOOK) == 3


def test_answers_are_not_retried(fresh_sim):
    fresh_sim.set_fault(BOOK, "exchange_error", reason="Invalid pair")
    result = fetch_book(fresh_sim, attempts=3)
    assert result["err"] == "exchange_error" and result["attempts"] == 1
    assert fresh_sim.request_count(BOOK) == 1


def test_rate_limit_honours_retry_after(fresh_sim):
    fresh_sim.set_fault(BOOK, "status", status=429, retry_after=1, times=1)
    started = time.monotonic()
    result = fetch_book(fresh_sim, attempts=2)
    assert result["type"] == "order_book"
    assert time.monotonic() - started >= 1.0   # waited as told, not a speed assertion


def test_path_prefix_of_base_url_is_kept(fresh_sim):
    fresh_sim.set_fault("*", "status", status=404)
    result = fetch_records("bitstamp", "ticker", "BTC/USD", base_url=fresh_sim.url + "/prefix",
                           attempts=1)
    assert result["err"] == "http_status"
    assert fresh_sim.request_count("/prefix/api/v2/ticker/btcusd/") == 1


@pytest.mark.parametrize("args, detail", [
    (("nowhere", "ticker", "BTC/USD"), "unknown exchange"),
    (("bitstamp", "depth", "BTC/USD"), "unknown type"),
    (("bitstamp", "ticker", "BTCUSD"), "BASE/QUOTE"),
])
def test_bad_requests_are_unsupported(args, detail):
    result = fetch_records(*args, attempts=1)
    assert result["err"] == "unsupported" and detail in result["detail"]
    assert_valid(result)


def test_dripping_headers_cannot_stretch_the_deadline():
    # Every receive is quick, so no socket timeout fires; only the attempt's deadline can.
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def drip():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"a")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    result = fetch_records("bitstamp", "ticker", "BTC/USD",
                           base_url=f"http://127.0.0.1:{server.getsockname()[1]}",
                           attempts=1, timeout=1)
    elapsed = time.monotonic() - started
    stop.set()
    server.close()
    assert result["err"] == "timeout", result
    assert elapsed < 20   # the server would drip forever: only the deadline ended it
