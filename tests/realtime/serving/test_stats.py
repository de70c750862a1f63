"""A stream's statistics and their ``stats`` message (realtime/serving/stats.py)."""

from __future__ import annotations

import json

import pytest

from realtime.serving.stats import StreamStats


def test_stats_window_rates_and_latencies() -> None:
    now = [100.0]
    stats = StreamStats(window_s=1.0, clock=lambda: now[0])
    for i in range(10):
        stats.record_input(98.95 + 0.1 * i)  # 98.95 .. 99.85: the first is out of the window at 100.0
        stats.record_output(99.05 + 0.1 * i, 10.0 + i)
    stats.dropped_before_processing = 3
    stats.dropped_before_sending = 1
    snapshot = stats.snapshot()
    assert snapshot.frames_in == 10 and snapshot.frames_out == 10 and snapshot.frames_dropped == 4
    assert snapshot.fps_in == 9.0 and snapshot.fps_out == 10.0
    assert snapshot.latency_ms_last == 19.0
    assert snapshot.latency_ms_window == [10.0 + i for i in range(10)]
    assert snapshot.latency_ms_mean == pytest.approx(14.5)
    message = json.loads(json.dumps(snapshot.to_message()))
    assert message["type"] == "stats" and message["fps"] == 10.0 and message["latency_ms_mean"] == 14.5
    now[0] = 200.0
    later = stats.snapshot()
    assert later.fps_out == 0.0 and later.latency_ms_mean is None and later.latency_ms_last is None
    with pytest.raises(ValueError):
        StreamStats(window_s=0)
