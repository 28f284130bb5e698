"""The frame batcher: size or time, whichever first; a failed send keeps its frames."""
import time

from streamers.batching import FrameBatcher


def test_flushes_at_size():
    sent = []
    batcher = FrameBatcher(sent.append, size=3, max_delay_ms=10_000)
    for i in range(7):
        batcher.add(i, f"f{i}")
    assert [len(batch) for batch in sent] == [3, 3]
    assert batcher.frames == [[6, "f6"]]


def test_flushes_when_the_oldest_frame_is_due():
    sent = []
    batcher = FrameBatcher(sent.append, size=100, max_delay_ms=1)
    batcher.add(1, "a")
    assert not sent and batcher.seconds_to_flush(time.monotonic()) <= 0.001
    time.sleep(0.002)
    batcher.flush_if_due(time.monotonic())
    assert sent == [[[1, "a"]]]
    assert batcher.seconds_to_flush(time.monotonic()) == float("inf")


def test_failed_send_keeps_frames_for_later():
    calls = []

    def flaky(frames):
        calls.append(list(frames))
        if len(calls) == 1:
            raise ConnectionError("broker away")

    batcher = FrameBatcher(flaky, size=2, max_delay_ms=10_000)
    batcher.add(1, "a")
    batcher.add(2, "b")          # first send fails; frames kept
    batcher.retry_at = 0         # (skip the one-second pause before the next try)
    batcher.add(3, "c")
    assert calls[-1] == [[1, "a"], [2, "b"], [3, "c"]]
    assert batcher.sent == 3 and batcher.send_errors == 1 and batcher.dropped == 0


def test_drain_at_stop_ignores_the_pause_and_counts_what_is_lost():
    sent, failing = [], [True]

    def send(frames):
        if failing[0]:
            raise ConnectionError("broker away")
        sent.append(list(frames))

    batcher = FrameBatcher(send, size=2, max_delay_ms=10_000)
    batcher.add(1, "a")
    batcher.add(2, "b")              # fails: held, and sends pause for a second
    assert batcher.seconds_to_flush(time.monotonic()) > 0.5   # no busy loop while paused
    failing[0] = False
    batcher.drain(attempts=1, pause=0)
    assert sent == [[[1, "a"], [2, "b"]]] and batcher.dropped == 0

    failing[0] = True
    batcher.add(3, "c")
    batcher.drain(attempts=2, pause=0)
    assert batcher.dropped == 1 and batcher.frames == []
