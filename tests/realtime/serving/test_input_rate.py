"""The camera rate each session is asked for (``input_rate`` messages):
realtime.serving.rate.InputRateControl."""

import pytest

from realtime.serving.rate import InputRateControl


def test_the_rate_follows_what_the_server_generates_while_it_drops_frames():
    control = InputRateControl(cap_fps=0.0, settle_s=3.0)
    assert control.update(1.0, 24.0, 9.0) is None  # start-up: not yet
    assert control.update(3.0, 0.0, 0.0) is None  # nothing received
    assert control.update(3.0, 24.0, 9.0) == round(1.25 * 9.0)  # dropping: 1.25 x generated
    assert control.asked_fps == 11.0
    assert control.update(4.0, 24.0, 9.2) is None  # smoothed 9.1 -> 11 again: no new request
    # The sender now sends 11; the server keeps up: the rate grows by 10% a second...
    assert control.update(5.0, 11.0, 10.8) == 12.0
    assert control.update(6.0, 12.0, 11.9) == 13.0
    # ...until the sender sends less than asked (its camera's own rate): no more requests.
    assert control.update(7.0, 8.0, 8.0) is None
    assert control.asked_fps == 13.0


def test_the_rate_stays_between_the_minimum_and_the_cap():
    capped = InputRateControl(cap_fps=15.0, settle_s=0.0)
    assert capped.update(0.0, 24.0, 1.0) == InputRateControl.MIN_FPS  # at least 5 fps
    asked = []
    for second in range(1, 40):  # the sender sends what it is asked for, and the server keeps up
        rate = capped.asked_fps or 0.0
        capped.update(float(second), rate, rate)
        asked.append(capped.asked_fps)
    assert asked == sorted(asked) and asked[-1] == 15.0  # grew up to the server's --max-input-fps...
    assert max(asked) == 15.0  # ...and not beyond
    uncapped = InputRateControl(settle_s=0.0)
    assert uncapped.update(0.0, 30.0, 12.0) == 15.0
    with pytest.raises(ValueError, match=">= 0"):
        InputRateControl(cap_fps=-1.0)
