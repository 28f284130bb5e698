"""Frames to tasks: one send per `size` frames or `max_delay_ms`, whichever comes first."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("collector.streamers")


class FrameBatcher:
    """Collects [received_ms, text] pairs and hands them to `send` as one list.

    A send that fails (the broker is away) keeps its frames and tries again at the next flush,
    up to `max_backlog` frames; beyond that the oldest are dropped and counted, so a long
    broker outage costs bounded memory and says what it lost.
    """

    def __init__(self, send, size: int = 100, max_delay_ms: float = 10, max_backlog: int = 200_000):
        self.send = send
        self.size = max(1, int(size))
        self.max_delay = max_delay_ms / 1000
        self.max_backlog = max_backlog
        self.frames: list = []
        self.first_at: float | None = None
        self.sent = 0        # frames handed over
        self.dropped = 0     # frames given up on while the broker was away
        self.send_errors = 0
        self.retry_at = 0.0  # after a failed send, wait before the next try instead of per frame

    def add(self, received_ms: int, text: str) -> None:
        if not self.frames:
            self.first_at = time.monotonic()
        self.frames.append([received_ms, text])
        if len(self.frames) >= self.size:
            self.flush()

    def seconds_to_flush(self, now: float) -> float:
        if not self.frames:
            return float("inf")
        return max(self.first_at + self.max_delay, self.retry_at) - now

    def flush_if_due(self, now: float) -> None:
        if self.frames and now - self.first_at >= self.max_delay:
            self.flush()

    def flush(self, force: bool = False) -> None:
        """Send what is held; `force` ignores the pause after a failed send (the last flush)."""
        if not self.frames or (time.monotonic() < self.retry_at and not force):
            return
        frames = self.frames
        try:
            self.send(frames)
        except Exception as exc:   # kombu already retried; keep the frames for the next flush
            self.send_errors += 1
            if len(frames) > self.max_backlog:
                self.dropped += len(frames) - self.max_backlog
                del frames[:len(frames) - self.max_backlog]
            log.error("send of %d frames failed (kept for the next flush; %d dropped so far): %s",
                      len(frames), self.dropped, exc)
            self.retry_at = time.monotonic() + 1.0
            return
        self.sent += len(frames)
        self.frames, self.first_at = [], None

    def drain(self, attempts: int = 5, pause: float = 1.0) -> None:
        """At stop: try a few times to hand over what is held, then say what is lost."""
        for attempt in range(attempts):
            self.flush(force=True)
            if not self.frames:
                return
            time.sleep(pause)
        self.dropped += len(self.frames)
        log.error("stopping with %d frames the broker would not take: dropped", len(self.frames))
        self.frames = []
