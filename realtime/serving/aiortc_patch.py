"""The project's two changes to aiortc's behaviour, both for latency, both per peer connection:

1. a camera frame leaves the receiver's jitter buffer as soon as its last packet is in, instead of when the
   next frame's first packet arrives (:func:`use_marker_jitter_buffers`);
2. the generated video carries the playout-delay RTP header extension with a zero minimum and maximum
   (:func:`use_zero_playout_delay`), so the browser shows each frame as soon as it is decoded instead of
   holding it in its jitter buffer to smooth the server's varying processing time.

aiortc (1.x) builds each ``RTCRtpReceiver`` with a ``JitterBuffer`` kept in the name-mangled private
attribute ``_RTCRtpReceiver__jitter_buffer``; that buffer finishes a frame only when a packet with a newer
RTP timestamp arrives, which holds every camera frame back by one frame interval (42 ms at 24 fps).
:func:`use_marker_jitter_buffers` swaps the video receivers' buffers of one peer connection for a
:class:`MarkerJitterBuffer` (call it once per peer connection, after ``setRemoteDescription`` and before
media flows). Nothing is patched globally.

The swap relies on aiortc internals; :func:`check_aiortc_internals` verifies each of them and names the one
that changed (``tests/realtime/serving/test_aiortc_patch.py`` runs it, so an aiortc upgrade that breaks the
patch fails there loudly rather than adding latency silently).
"""

from __future__ import annotations

import inspect
import logging
import types
from importlib.metadata import version

from aiortc import RTCPeerConnection, RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    HeaderExtensions,
    HeaderExtensionsMap,
    RtpPacket,
    pack_header_extensions,
    unpack_header_extensions,
)
from aiortc.sdp import SessionDescription

log = logging.getLogger(__name__)

RECEIVER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
"""Where ``aiortc.rtcrtpreceiver.RTCRtpReceiver`` keeps its jitter buffer (``self.__jitter_buffer``)."""
SENDER_MAP_ATTRIBUTE = "_RTCRtpSender__rtp_header_extensions_map"
"""Where ``aiortc.rtcrtpsender.RTCRtpSender`` keeps its header extension map
(``self.__rtp_header_extensions_map``)."""
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
"""The playout-delay header extension (webrtc.org, "Playout Delay"); Chromium offers it for video."""


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


def playout_delay_value(min_ms: int, max_ms: int) -> bytes:
    """The 3 bytes of a playout-delay extension: 12-bit minimum and maximum delay in units of 10 ms.

    Raises:
        ValueError: for a delay outside 0..40950 ms or a minimum above the maximum.
    """
    if not (0 <= min_ms <= max_ms <= 4095 * 10):
        raise ValueError(
            f"playout delay must satisfy 0 <= min <= max <= 40950 ms, got min {min_ms}, max {max_ms}"
        )
    packed = ((min_ms // 10) << 12) | (max_ms // 10)
    return packed.to_bytes(3, "big")


class PlayoutDelayExtensionsMap(HeaderExtensionsMap):
    """aiortc's header extension map, plus the playout-delay extension (zero minimum and maximum) on every
    packet once the negotiated parameters name it.

    With a zero minimum and maximum, libwebrtc (Chromium) renders each frame as soon as it is decoded
    ("zero playout delay"), the mode built for cloud gaming; a receiver that did not negotiate the extension
    never sees it (the answer names it only where the offer did).
    """

    def __init__(self) -> None:
        super().__init__()
        self.playout_delay_id: int | None = None
        self._value = playout_delay_value(0, 0)

    def configure(self, parameters: RTCRtpParameters) -> None:
        """aiortc's configuration, and the negotiated id of the playout-delay extension, if any."""
        super().configure(parameters)
        ids = [e.id for e in parameters.headerExtensions if e.uri == PLAYOUT_DELAY_URI]
        self.playout_delay_id = ids[0] if ids else None

    def set(self, values: HeaderExtensions) -> tuple[int, bytes]:
        """aiortc's extensions of one packet, serialized, with the playout delay added."""
        profile, value = super().set(values)
        if self.playout_delay_id is None:
            return profile, value
        extensions = unpack_header_extensions(profile, value) if value else []
        extensions.append((self.playout_delay_id, self._value))
        return pack_header_extensions(extensions)


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
    # a sender needs an event loop to be built, and this check may run outside one: read its source instead
    # (use_zero_playout_delay also checks the attribute of each real sender before replacing it)
    if f"self.__{SENDER_MAP_ATTRIBUTE.split('__', 1)[1]} = " not in inspect.getsource(RTCRtpSender.__init__):
        problems.append(
            f"aiortc.rtcrtpsender.RTCRtpSender no longer keeps its extension map in {SENDER_MAP_ATTRIBUTE}"
        )
    if "_headerExtensions" not in inspect.getsource(RTCRtpTransceiver.__init__):
        problems.append("aiortc.rtcrtptransceiver.RTCRtpTransceiver no longer keeps _headerExtensions")
    if list(inspect.signature(HeaderExtensionsMap.set).parameters) != ["self", "values"]:
        problems.append(
            f"aiortc.rtp.HeaderExtensionsMap.set{inspect.signature(HeaderExtensionsMap.set)} changed"
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
            f"aiortc {version('aiortc')} changed internals that realtime/serving/aiortc_patch.py relies on: "
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


def _offered_playout_delay_ids(pc: RTCPeerConnection) -> dict[str, int]:
    """mid -> the id the remote offer gave the playout-delay extension, for each video m-line naming it."""
    remote = pc.remoteDescription
    if remote is None:
        return {}
    offered = {}
    for media in SessionDescription.parse(remote.sdp).media:
        for extension in media.rtp.headerExtensions:
            if media.kind == "video" and extension.uri == PLAYOUT_DELAY_URI and media.rtp.muxId:
                offered[media.rtp.muxId] = extension.id
    return offered


def use_zero_playout_delay(pc: RTCPeerConnection) -> int:
    """Send ``pc``'s video with the playout-delay extension at zero, where the remote offer names it.

    Call it after ``setRemoteDescription(offer)`` and before ``createAnswer``: the answer then names the
    extension (with the offer's id) and the video senders' packets carry it. Returns how many video
    transceivers got it (0 where the offer did not name the extension, e.g. aiortc's own client).

    Raises:
        AiortcInternalsError: if aiortc's internals changed (see :func:`check_aiortc_internals`); nothing
            is changed then, and the browser keeps its own playout delay.
    """
    check_aiortc_internals()
    offered = _offered_playout_delay_ids(pc)
    changed = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video" or transceiver.mid not in offered:
            continue
        current = getattr(transceiver.sender, SENDER_MAP_ATTRIBUTE, None)
        if not isinstance(current, HeaderExtensionsMap):
            raise AiortcInternalsError(
                f"aiortc {version('aiortc')}: RTCRtpSender keeps no HeaderExtensionsMap in "
                f"{SENDER_MAP_ATTRIBUTE} (found {type(current).__name__}); "
                "update realtime/serving/aiortc_patch.py"
            )
        extensions = transceiver._headerExtensions
        if not any(e.uri == PLAYOUT_DELAY_URI for e in extensions):
            extensions.append(
                RTCRtpHeaderExtensionParameters(id=offered[transceiver.mid], uri=PLAYOUT_DELAY_URI)
            )
        if not isinstance(current, PlayoutDelayExtensionsMap):
            setattr(transceiver.sender, SENDER_MAP_ATTRIBUTE, PlayoutDelayExtensionsMap())
        changed += 1
    return changed
