"""realtime/serving/aiortc_patch.py: aiortc still has what the patch relies on; the patch hands frames on
early."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket, unpack_header_extensions

from conftest import offer_with_extmap
from realtime.serving import aiortc_patch
from realtime.serving.aiortc_patch import (
    PLAYOUT_DELAY_URI,
    RECEIVER_BUFFER_ATTRIBUTE,
    SENDER_MAP_ATTRIBUTE,
    AiortcInternalsError,
    MarkerJitterBuffer,
    PlayoutDelayExtensionsMap,
    check_aiortc_internals,
    playout_delay_value,
    use_marker_jitter_buffers,
    use_zero_playout_delay,
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


def test_the_check_needs_no_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``asyncio.run`` the main thread has no event loop, and an aiortc sender cannot be built there:
    the check must not build one (it ran first in such a thread in the full suite, and failed)."""
    asyncio.run(asyncio.sleep(0))
    monkeypatch.setattr(aiortc_patch, "_problems", None)
    check_aiortc_internals()


def test_a_renamed_sender_map_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc_patch, "_problems", None)
    monkeypatch.setattr(aiortc_patch, "SENDER_MAP_ATTRIBUTE", "_RTCRtpSender__renamed_map")
    with pytest.raises(AiortcInternalsError, match=r"RTCRtpSender no longer keeps .*renamed_map"):
        check_aiortc_internals()
    monkeypatch.setattr(aiortc_patch, "_problems", None)


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


def test_playout_delay_value_packs_twelve_bit_minimum_and_maximum_in_10_ms_units() -> None:
    assert playout_delay_value(0, 0) == b"\x00\x00\x00"
    assert playout_delay_value(100, 200) == bytes([0x00, 0xA0, 0x14])  # 10 and 20 units
    assert playout_delay_value(40950, 40950) == b"\xff\xff\xff"
    for bad in ((-10, 0), (200, 100), (0, 40960)):
        with pytest.raises(ValueError, match="0 <= min <= max <= 40950 ms"):
            playout_delay_value(*bad)


def _parameters(*extensions: tuple[int, str]) -> RTCRtpParameters:
    return RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=uri) for i, uri in extensions]
    )


MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def test_extension_map_adds_a_zero_playout_delay_where_negotiated() -> None:
    values = HeaderExtensions(mid="0", abs_send_time=0x123456)
    negotiated = PlayoutDelayExtensionsMap()
    negotiated.configure(_parameters((1, MID_URI), (3, ABS_SEND_TIME_URI), (9, PLAYOUT_DELAY_URI)))
    assert negotiated.playout_delay_id == 9
    extensions = dict(unpack_header_extensions(*negotiated.set(values)))
    assert extensions == {1: b"0", 3: b"\x12\x34\x56", 9: b"\x00\x00\x00"}
    # aiortc's own map still reads the packet's other extensions
    plain = HeaderExtensionsMap()
    plain.configure(_parameters((1, MID_URI), (3, ABS_SEND_TIME_URI)))
    read = plain.get(*negotiated.set(values))
    assert (read.mid, read.abs_send_time) == ("0", 0x123456)
    # not negotiated: exactly aiortc's bytes
    without = PlayoutDelayExtensionsMap()
    without.configure(_parameters((1, MID_URI), (3, ABS_SEND_TIME_URI)))
    assert without.playout_delay_id is None and without.set(values) == plain.set(values)
    # nothing else to send: the playout delay alone
    alone = PlayoutDelayExtensionsMap()
    alone.configure(_parameters((9, PLAYOUT_DELAY_URI)))
    assert unpack_header_extensions(*alone.set(HeaderExtensions())) == [(9, b"\x00\x00\x00")]


@pytest.mark.parametrize("offered", [True, False])
def test_the_answer_names_the_playout_delay_only_where_the_offer_did(offered: bool) -> None:
    async def main() -> None:
        offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        offerer.addTransceiver("video", direction="sendrecv")
        offer = (await offerer.createOffer()).sdp
        if offered:
            offer = offer_with_extmap(offer, 12, PLAYOUT_DELAY_URI)
        answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await answerer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        answerer.addTrack(VideoStreamTrack())
        assert use_zero_playout_delay(answerer) == (1 if offered else 0)
        answer = (await answerer.createAnswer()).sdp
        assert (f"a=extmap:12 {PLAYOUT_DELAY_URI}" in answer) is offered, answer
        (transceiver,) = answerer.getTransceivers()
        sender_map = getattr(transceiver.sender, SENDER_MAP_ATTRIBUTE)
        assert isinstance(sender_map, PlayoutDelayExtensionsMap) is offered
        if offered:  # what the sender configures its map from once connected: the negotiated extensions
            sender_map.configure(RTCRtpParameters(headerExtensions=transceiver._headerExtensions))
            assert sender_map.playout_delay_id == 12
            assert use_zero_playout_delay(answerer) == 1  # a second call adds nothing more
            assert [e.uri for e in transceiver._headerExtensions].count(PLAYOUT_DELAY_URI) == 1
            assert getattr(transceiver.sender, SENDER_MAP_ATTRIBUTE) is sender_map
        await offerer.close()
        await answerer.close()

    asyncio.run(asyncio.wait_for(main(), 30))
