"""The camera rate one stream's sender is asked for (:class:`InputRateControl`, sent as ``input_rate``
messages)."""

from __future__ import annotations


class InputRateControl:
    """How many camera frames per second to ask one stream's sender for: about what the server generates.

    A camera frame the server has no time for is still encoded by the sender and decoded here before it is
    dropped as stale (the pipeline keeps only the newest frame). When several streams share the CPU, those
    wasted codec passes take the time that generation needs. Once a second (:meth:`update`, from the
    ``stats`` loop) the rate follows the generated rate: while the stream drops frames (generated fps below
    :attr:`DROP_RATIO` x received fps) the sender is asked for :attr:`HEADROOM` x the generated fps (smoothed,
    at least :attr:`MIN_FPS`); while it keeps up, the asked rate grows by :attr:`GROWTH` per update until it
    is above what the sender sends anyway. Never above ``cap_fps`` (the server's ``--max-input-fps``; 0 =
    none). The page applies it as its camera track's ``frameRate`` constraint and the camera sender's
    ``maxFramerate`` (``RTCRtpSender.setParameters``), the load client by skipping frames. Same idea as
    receiver-driven rate adaptation in RTP (RFC 8888's feedback driving the sender), applied to the frame
    rate.

    Args:
        cap_fps: the highest rate ever asked for, or 0 for none.
        settle_s: no request before the stream has run this long (start-up drops are not congestion).
    """

    DROP_RATIO = 0.8
    HEADROOM = 1.25
    GROWTH = 1.1
    MIN_FPS = 5.0
    SMOOTHING = 0.5
    STEP_FPS = 1.0

    def __init__(self, cap_fps: float = 0.0, settle_s: float = 3.0) -> None:
        if cap_fps < 0 or settle_s < 0:
            raise ValueError(f"cap_fps and settle_s must be >= 0, got {cap_fps}, {settle_s}")
        self.cap_fps = cap_fps
        self.settle_s = settle_s
        self.asked_fps: float | None = None
        """The rate last asked for (None: nothing asked yet)."""
        self._generated_fps: float | None = None

    def update(self, uptime_s: float, fps_in: float, fps_out: float) -> float | None:
        """Take one second's received and generated rates (frames per second); return the rate to ask the
        sender for now, or None when the request does not change (by at least :attr:`STEP_FPS`)."""
        if uptime_s < self.settle_s or fps_in <= 0:
            return None
        smoothed = self._generated_fps
        smoothed = fps_out if smoothed is None else self.SMOOTHING * smoothed + (1 - self.SMOOTHING) * fps_out
        self._generated_fps = smoothed
        if smoothed < self.DROP_RATIO * fps_in:
            rate = max(self.MIN_FPS, self.HEADROOM * smoothed)
        elif self.asked_fps is not None and self.asked_fps <= self.HEADROOM * fps_in:
            rate = self.asked_fps * self.GROWTH
        else:
            return None
        if self.cap_fps:
            rate = min(rate, self.cap_fps)
        rate = float(round(rate))
        if self.asked_fps is not None and abs(rate - self.asked_fps) < self.STEP_FPS:
            return None
        self.asked_fps = rate
        return rate
