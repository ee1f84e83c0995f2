"""The fast video encoders: what they send decodes to the picture given, over real WebRTC between aiortc peers
with either codec the client accepts; idle pictures are converted once per avatar, not once per session."""

from __future__ import annotations

import asyncio
import fractions

import av
import cv2
import numpy as np
import pytest
import skimage.data
from aiortc import RTCRtpSender
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload

from realtime.avatar.reader import AvatarBundle
from realtime.config import SessionConfig
from realtime.engines.tts.base import VoiceSettings
from realtime.media_codecs import FastH264Encoder, FastVp8Encoder, I420Frames
from realtime.session import LiveSession
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool, session_config
from testkit.peers import ReceivingPeer
from testkit.voice import RecordingEvents

CLOSE = 6.0  # mean |difference| per channel under which a decoded picture is the one sent (codec noise: 1–4)
FULL = (512, 512)  # the astronaut avatar's own size
ENCODERS = [(FastVp8Encoder, "libvpx", vp8_depayload), (FastH264Encoder, "h264", h264_depayload)]


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def encode_and_decode(encoder, codec: str, depayload, frame: av.VideoFrame) -> np.ndarray:
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
    payloads, _ = encoder.encode(frame, force_keyframe=True)
    decoder = av.CodecContext.create(codec, "r")
    decoded = decoder.decode(av.Packet(b"".join(depayload(payload) for payload in payloads)))
    return decoded[-1].to_ndarray(format="rgb24")


@pytest.mark.parametrize(("make", "codec", "depayload"), ENCODERS)
@pytest.mark.parametrize("size", [(320, 240), (321, 241)])
def test_an_rgb_frame_decodes_to_the_picture_sent(make, codec, depayload, size):
    """Speech frames come as RGB and are converted by the encoder (an odd last row or column is dropped)."""
    width, height = size
    rgb = np.ascontiguousarray(skimage.data.astronaut()[:height, :width])
    decoded = encode_and_decode(make(), codec, depayload, av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    assert decoded.shape[:2] == (height - height % 2, width - width % 2)
    assert difference(decoded, rgb[: decoded.shape[0], : decoded.shape[1]]) < CLOSE


def test_idle_pictures_are_converted_once_per_avatar_and_keep_their_look(tmp_path):
    avatar = AvatarBundle.open(write_astronaut_bundle(tmp_path / "avatar", frame_count=2))
    shared = I420Frames.of(avatar, avatar.frames)
    assert I420Frames.of(avatar, avatar.frames) is shared  # a second session of the avatar gets the same
    frame = shared.frame(1, FULL)
    assert frame.format.name == "yuv420p"
    assert difference(frame.to_ndarray(format="rgb24"), avatar.frames[1]) < 3.0  # only 4:2:0 chroma loss
    decoded = encode_and_decode(FastVp8Encoder(), "libvpx", vp8_depayload, shared.frame(1, FULL))
    assert difference(decoded, avatar.frames[1]) < CLOSE
    smaller = shared.frame(1, (320, 320)).to_ndarray(format="rgb24")  # a page showing it 320 px wide
    assert smaller.shape == (320, 320, 3)
    assert difference(smaller, cv2.resize(avatar.frames[1], (320, 320), interpolation=cv2.INTER_AREA)) < 3.0


def test_idle_conversions_are_bounded(tmp_path, monkeypatch):
    avatar = AvatarBundle.open(write_astronaut_bundle(tmp_path / "avatar", frame_count=4))
    monkeypatch.setattr(I420Frames, "CACHE_BYTES", 2 * 512 * 512 * 3 // 2)  # room for two 512×512 conversions
    shared = I420Frames(avatar.frames)
    for index in (0, 1, 2, 3, 3, 2):
        shared.frame(index, FULL)
    assert list(shared._converted) == [(3, FULL), (2, FULL)]  # the two shown most recently
    for index in (0, 1, 2, 3):
        shared.frame(index, (256, 256))  # a quarter of the bytes each: all sizes share the one bound
    assert list(shared._converted) == [(2, FULL), (0, (256, 256)), (1, (256, 256)), (2, (256, 256)), (3, (256, 256))]


def still_config(tmp_path) -> SessionConfig:
    return session_config(
        session_id="codecs",
        role_id=1,
        role_name="still",
        fps=25,
        avatar_path=write_astronaut_bundle(tmp_path / "still", frame_count=1),
        lipsync_engine="default",
        tts_engine="espeak",
        voice=VoiceSettings(),
    )


@pytest.mark.usefixtures("loopback_ice")
@pytest.mark.parametrize(("mime", "encoder"), [("video/VP8", FastVp8Encoder), ("video/H264", FastH264Encoder)])
async def test_the_session_sends_with_the_fast_encoder_of_the_codec_the_client_accepts(tmp_path, mime, encoder):
    pool = model_pool(device="cpu")
    live = await LiveSession.open(still_config(tmp_path), pool, RecordingEvents())
    client = ReceivingPeer()
    video = next(t for t in client.peer.getTransceivers() if t.kind == "video")
    video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime])
    try:
        await client.accept(await live.accept_offer(await client.offer()))
        async with asyncio.timeout(15):
            while len(client.video) < 10:
                await asyncio.sleep(0.02)
        sender = next(t.sender for t in live.peer.connection.getTransceivers() if t.kind == "video")
        assert type(sender._RTCRtpSender__encoder) is encoder
        still = live.lease.avatar.frames[0]
        assert all(difference(frame.data, still) < CLOSE for frame in client.video[3:10])
    finally:
        await client.close()
        await live.close()
        await pool.aclose()
