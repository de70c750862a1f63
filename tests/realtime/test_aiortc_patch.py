"""realtime/aiortc_patch.py: aiortc still has what the patch relies on; the patch hands frames on early."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from realtime import aiortc_patch
from realtime.aiortc_patch import (
    RECEIVER_BUFFER_ATTRIBUTE,
    AiortcInternalsError,
    MarkerJitterBuffer,
    check_aiortc_internals,
    use_marker_jitter_buffers,
)


def _packet(sequence_number: int, timestamp: int, marker: bool, data: bytes) -> RtpPacket:
    packet = RtpPacket(
        payload_type=96, marker=int(marker), sequence_number=sequence_number, timestamp=timestamp
    )
    packet._data = data  # type: ignore[attr-defined]  # what aiortc's receiver sets: the depayloaded bytes
    return packet


def test_aiortc_still_has_the_internals_the_patch_relies_on() -> None:
    check_aiortc_internals()  # on failure, AiortcInternalsError names each internal that changed


def test_a_changed_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc_patch, "_problems", None)
    monkeypatch.setattr(aiortc_patch, "RECEIVER_BUFFER_ATTRIBUTE", "_RTCRtpReceiver__renamed")
    with pytest.raises(AiortcInternalsError, match=r"RTCRtpReceiver keeps no JitterBuffer in .*renamed"):
        check_aiortc_internals()
    monkeypatch.setattr(aiortc_patch, "_problems", None)  # the next test checks the real internals again


def test_aiortc_alone_still_holds_a_complete_frame_back() -> None:
    """What the patch is for: if this fails, aiortc now hands frames on at their marker itself, and the
    patch can go."""
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert buffer.add(_packet(100, 9000, False, b"a"))[1] is None
    assert buffer.add(_packet(101, 9000, True, b"b"))[1] is None  # complete, but held back...
    frame = buffer.add(_packet(102, 12000, True, b"c"))[1]  # ...until the next frame starts
    assert frame is not None and frame.data == b"ab"


def test_marker_jitter_buffer_hands_a_frame_on_at_its_last_packet() -> None:
    buffer = MarkerJitterBuffer(capacity=16, is_video=True)
    assert buffer.add(_packet(100, 9000, False, b"a"))[1] is None
    assert buffer.add(_packet(101, 9000, False, b"b"))[1] is None
    frame = buffer.add(_packet(102, 9000, True, b"c"))[1]  # aiortc would wait for packet 103
    assert frame is not None and frame.data == b"abc" and frame.timestamp == 9000
    # out of order: the frame is complete when its missing middle packet arrives
    assert buffer.add(_packet(103, 12000, False, b"d"))[1] is None
    assert buffer.add(_packet(105, 12000, True, b"f"))[1] is None
    frame = buffer.add(_packet(104, 12000, False, b"e"))[1]
    assert frame is not None and frame.data == b"def"
    # a lost last packet: aiortc's own rule hands the frame on when the next frame starts
    assert buffer.add(_packet(106, 15000, False, b"g"))[1] is None
    frame = buffer.add(_packet(108, 18000, True, b"i"))[1]
    assert frame is None  # 107 is missing: neither rule can finish 15000 yet
    frame = buffer.add(_packet(107, 15000, False, b"h"))[1]
    assert frame is not None and frame.data == b"gh"
    frame = buffer.add(_packet(109, 21000, True, b"j"))[1]
    assert frame is not None and frame.data == b"i"  # 18000 was finished by its marker...
    last = buffer.add(_packet(110, 24000, True, b"k"))[1]
    assert last is not None and last.data == b"j"  # ...each frame exactly once


def test_marker_jitter_buffers_replace_only_video_receivers() -> None:
    async def main() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(VideoStreamTrack())
        pc.addTrack(AudioStreamTrack())
        assert use_marker_jitter_buffers(pc) == 1
        assert use_marker_jitter_buffers(pc) == 0  # already replaced
        buffers = {t.kind: getattr(t.receiver, RECEIVER_BUFFER_ATTRIBUTE) for t in pc.getTransceivers()}
        assert type(buffers["video"]) is MarkerJitterBuffer and type(buffers["audio"]) is JitterBuffer
        # the receiver's buffer now hands a frame on at its last packet
        frame = buffers["video"].add(_packet(7, 3000, True, b"x"))[1]
        assert frame is not None and frame.data == b"x"
        await pc.close()

    asyncio.run(asyncio.wait_for(main(), 30))
