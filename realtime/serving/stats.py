"""A stream's statistics: frame counters, rates and latencies over a window, and their ``stats`` message.

:class:`StreamStats` counts on the event loop; :class:`StreamStatsSnapshot` is one reading of it, with
:meth:`StreamStatsSnapshot.to_message`, the ``{"type": "stats", ...}`` signaling message the page shows.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StreamStatsSnapshot:
    """Counters of one stream, and rates and latencies over the last ``window_s`` seconds.

    Attributes:
        frames_in: camera frames received since the start.
        frames_out: output frames returned by the outgoing track's ``recv()`` since the start.
        frames_dropped: frames dropped anywhere on the way (latest frame wins): camera frames never
            estimated, poses never generated, generated frames never sent.
        frames_failed: frames whose estimation or generation raised (logged and skipped).
        frames_with_person: generated frames whose camera frame showed a person.
        fps_in, fps_out: frames per second over the window.
        latency_ms_mean, latency_ms_last: server latency (camera frame arrival -> its output frame leaving
            ``recv()``) over the window; ``None`` when no frame left in the window.
        latency_ms_window: every such latency in the window, oldest first.
        timings_ms: the pipeline's per-stage timings of the last generated frame.
    """

    frames_in: int
    frames_out: int
    frames_dropped: int
    frames_failed: int
    frames_with_person: int
    fps_in: float
    fps_out: float
    latency_ms_mean: float | None
    latency_ms_last: float | None
    latency_ms_window: list[float]
    timings_ms: dict[str, float]
    window_s: float

    def to_message(self) -> dict[str, Any]:
        """The ``{"type": "stats", ...}`` signaling message (JSON-serializable, values rounded)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "type": "stats",
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "frames_failed": self.frames_failed,
            "frames_with_person": self.frames_with_person,
            "fps_in": r(self.fps_in),
            "fps_out": r(self.fps_out),
            "fps": r(self.fps_out),
            "latency_ms_mean": r(self.latency_ms_mean),
            "latency_ms_last": r(self.latency_ms_last),
            "latency_ms_window": [round(v, 1) for v in self.latency_ms_window],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "window_s": self.window_s,
        }


class StreamStats:
    """Counts frames and keeps the per-frame server latencies of the last ``window_s`` seconds.

    Times are ``time.perf_counter()`` seconds. Updated and read on the event loop only. The ``dropped_*``
    counters are each stage's slot's :attr:`LatestSlot.dropped`.
    """

    def __init__(self, window_s: float = 1.0, clock: Callable[[], float] = time.perf_counter) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self.frames_in = 0
        self.frames_out = 0
        self.frames_failed = 0
        self.frames_with_person = 0
        self.dropped_before_processing = 0
        self.dropped_between_stages = 0
        self.dropped_before_sending = 0
        self.last_timings_ms: dict[str, float] = {}
        self._arrivals_s: collections.deque[float] = collections.deque()
        self._outputs: collections.deque[tuple[float, float]] = collections.deque()  # (time_s, latency_ms)

    def record_input(self, now_s: float) -> None:
        """A camera frame arrived at ``now_s``."""
        self.frames_in += 1
        self._arrivals_s.append(now_s)
        self._trim(now_s)

    def record_output(self, now_s: float, latency_ms: float) -> None:
        """An output frame left ``recv()`` at ``now_s``, ``latency_ms`` after its camera frame arrived."""
        self.frames_out += 1
        self._outputs.append((now_s, latency_ms))
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        start_s = now_s - self.window_s
        while self._arrivals_s and self._arrivals_s[0] < start_s:
            self._arrivals_s.popleft()
        while self._outputs and self._outputs[0][0] < start_s:
            self._outputs.popleft()

    def snapshot(self) -> StreamStatsSnapshot:
        """The counters now and the rates and latencies over the last ``window_s`` seconds."""
        self._trim(self._clock())
        latencies_ms = [latency for _, latency in self._outputs]
        dropped = self.dropped_before_processing + self.dropped_between_stages + self.dropped_before_sending
        return StreamStatsSnapshot(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=dropped,
            frames_failed=self.frames_failed,
            frames_with_person=self.frames_with_person,
            fps_in=len(self._arrivals_s) / self.window_s,
            fps_out=len(latencies_ms) / self.window_s,
            latency_ms_mean=float(np.mean(latencies_ms)) if latencies_ms else None,
            latency_ms_last=latencies_ms[-1] if latencies_ms else None,
            latency_ms_window=latencies_ms,
            timings_ms=dict(self.last_timings_ms),
            window_s=self.window_s,
        )
