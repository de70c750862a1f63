"""The project's one change to aiortc's behaviour: a video frame leaves the receiver's jitter buffer as soon
as its last packet is in, instead of when the next frame's first packet arrives.

aiortc (1.x) builds each ``RTCRtpReceiver`` with a ``JitterBuffer`` kept in the name-mangled private
attribute ``_RTCRtpReceiver__jitter_buffer``; that buffer finishes a frame only when a packet with a newer
RTP timestamp arrives, which holds every camera frame back by one frame interval (42 ms at 24 fps).
:func:`use_marker_jitter_buffers` swaps the video receivers' buffers of one peer connection for a
:class:`MarkerJitterBuffer` (call it once per peer connection, after ``setRemoteDescription`` and before
media flows). Nothing is patched globally.

The swap relies on aiortc internals; :func:`check_aiortc_internals` verifies each of them and names the one
that changed (``tests/realtime/test_aiortc_patch.py`` runs it, so an aiortc upgrade that breaks the patch
fails there loudly rather than adding latency silently).
"""

from __future__ import annotations

import inspect
import logging
import types
from importlib.metadata import version

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

RECEIVER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
"""Where ``aiortc.rtcrtpreceiver.RTCRtpReceiver`` keeps its jitter buffer (``self.__jitter_buffer``)."""


class AiortcInternalsError(RuntimeError):
    """aiortc no longer has an internal that :class:`MarkerJitterBuffer` or its installation relies on."""


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame leaves as soon as all its packets are in: every packet from
    the buffer's start up to one with the RTP marker bit (a frame's last packet, RFC 6184 section 5.1 for
    H.264, RFC 7741 section 4.1 for VP8), with one timestamp.

    Where a frame is not complete (loss), aiortc's own rule applies unchanged. Uses aiortc's ``_origin``,
    ``_packets``, ``remove`` and the depayloaded bytes ``RtpPacket._data`` (checked by
    :func:`check_aiortc_internals`).
    """

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Add a packet; returns (picture loss indication wanted, a complete frame or None)."""
        pli_flag, frame = super().add(packet)
        if frame is None:
            frame = self._complete_first_frame()
        return pli_flag, frame

    def _complete_first_frame(self) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None  # a gap, or the frame's last packet is missing: wait
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return None


def _internals_problems() -> list[str]:
    """Every aiortc internal the patch relies on that is missing or changed, in words (empty: all there)."""
    problems = []
    try:
        buffer = JitterBuffer(capacity=16, is_video=True)
    except TypeError as exc:
        return [f"aiortc.jitterbuffer.JitterBuffer(capacity, is_video=...) cannot be called: {exc}"]
    for name in ("_origin", "_packets", "capacity", "remove"):
        if not hasattr(buffer, name):
            problems.append(f"aiortc.jitterbuffer.JitterBuffer has no attribute {name!r}")
    packets = getattr(buffer, "_packets", None)
    if not (isinstance(packets, list) and len(packets) == 16):
        problems.append("aiortc.jitterbuffer.JitterBuffer._packets is no longer a list of `capacity` slots")
    if list(inspect.signature(JitterBuffer.add).parameters) != ["self", "packet"]:
        problems.append(f"aiortc.jitterbuffer.JitterBuffer.add{inspect.signature(JitterBuffer.add)} changed")
    if list(inspect.signature(JitterFrame).parameters) != ["data", "timestamp"]:
        problems.append(f"aiortc.jitterbuffer.JitterFrame{inspect.signature(JitterFrame)} changed")
    packet = RtpPacket(marker=1, sequence_number=1, timestamp=2)
    if (packet.marker, packet.sequence_number, packet.timestamp) != (1, 1, 2):
        problems.append("aiortc.rtp.RtpPacket's marker / sequence_number / timestamp changed")
    try:
        receiver = RTCRtpReceiver("video", types.SimpleNamespace(state="new"))  # type: ignore[arg-type]
    except Exception as exc:  # any failure means the check below cannot be made; reported with its cause
        problems.append(f"aiortc.rtcrtpreceiver.RTCRtpReceiver('video', transport) failed: {exc!r}")
    else:
        current = getattr(receiver, RECEIVER_BUFFER_ATTRIBUTE, None)
        if not isinstance(current, JitterBuffer):
            problems.append(
                f"aiortc.rtcrtpreceiver.RTCRtpReceiver keeps no JitterBuffer in {RECEIVER_BUFFER_ATTRIBUTE} "
                f"(found {type(current).__name__})"
            )
    return problems


_problems: list[str] | None = None


def check_aiortc_internals() -> None:
    """Check (once per process; later calls repeat the first answer) that aiortc still has what
    :class:`MarkerJitterBuffer` and :func:`use_marker_jitter_buffers` rely on.

    Raises:
        AiortcInternalsError: naming each internal that changed, the aiortc version, and what to do.
    """
    global _problems
    if _problems is None:
        _problems = _internals_problems()
    if _problems:
        raise AiortcInternalsError(
            f"aiortc {version('aiortc')} changed internals that realtime/aiortc_patch.py relies on: "
            + "; ".join(_problems)
            + ". Update MarkerJitterBuffer for this aiortc, or install the aiortc version it was written for."
        )


def use_marker_jitter_buffers(pc: RTCPeerConnection) -> int:
    """Give the video receivers of ``pc`` a :class:`MarkerJitterBuffer` (call once ``pc`` has its
    transceivers, before media flows); returns how many were replaced (0 for those already replaced).

    Raises:
        AiortcInternalsError: if aiortc's internals changed (see :func:`check_aiortc_internals`); nothing
            is replaced then, and frames arrive one frame interval later than they could.
    """
    check_aiortc_internals()
    replaced = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        current = getattr(receiver, RECEIVER_BUFFER_ATTRIBUTE)
        if transceiver.kind != "video" or isinstance(current, MarkerJitterBuffer):
            continue
        setattr(receiver, RECEIVER_BUFFER_ATTRIBUTE, MarkerJitterBuffer(current.capacity, is_video=True))
        replaced += 1
    return replaced
