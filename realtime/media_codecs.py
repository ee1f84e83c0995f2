"""Video encoders set for many sessions per core, installed on a peer connection's senders after negotiation.

aiortc's own encoders are set for one call on a big machine: VP8 with the
temporal denoiser on (``noise-sensitivity`` 4, about half of the encoder's
time on a talking head, which has no camera noise to remove) and libx264 at its
default ``medium`` preset (about 11 ms a 512-px frame). Both convert RGB to
YUV with swscale, about 0.8 ms a 512-px frame. Here: VP8 at its fastest
real-time speed with no denoiser, x264 at ``superfast``, one thread each (the
sessions already keep every core busy in parallel), and the conversion done
by OpenCV's SIMD kernel (about 0.3 ms). Measured in ``bench.stage_costs``.

Frames that are already ``yuv420p`` pass through untouched: the video track
sends the avatar's idle frames in that format from a conversion shared by every
session of the avatar (:class:`I420Frames`).
"""

from __future__ import annotations

import fractions
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence

import av
import cv2
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

VP8_SPEED = "-16"  # libvpx real-time speed: the fastest fixed setting (negative: not adapted to the load)
X264_PRESET = "superfast"


def i420_planes(rgb: np.ndarray) -> np.ndarray:
    """An H×W RGB24 picture as stacked I420 planes, (H'·3/2)×W' (BT.601, limited range, as swscale).

    4:2:0 needs even sides (x264 refuses others): an odd last row or column is dropped.
    """
    height, width = rgb.shape[0] & ~1, rgb.shape[1] & ~1
    return cv2.cvtColor(np.ascontiguousarray(rgb[:height, :width]), cv2.COLOR_RGB2YUV_I420)


def resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` at ``size`` (width, height), no larger than it is: halved with OpenCV's area filter (each pixel the
    mean of four: no aliasing) while that stays at or above ``size``, then bilinear for the rest, a factor between
    ½ and 1 that bilinear takes without visible aliasing. The area filter at a factor that is not a whole
    fraction costs 6× the bilinear one (512 → 320 px: 1.4 ms against 0.23 ms of CPU, more than encoding the
    smaller picture saves); the picture itself when it already has that size."""
    picture = np.ascontiguousarray(rgb)
    while picture.shape[1] >= 2 * size[0] and picture.shape[0] >= 2 * size[1]:
        half = (picture.shape[1] // 2, picture.shape[0] // 2)
        picture = cv2.resize(picture, half, interpolation=cv2.INTER_AREA)
    if (picture.shape[1], picture.shape[0]) != size:
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_LINEAR)
    return picture


def _as_i420(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return frame
    converted = av.VideoFrame.from_ndarray(i420_planes(frame.to_ndarray(format="rgb24")), format="yuv420p")
    converted.pts, converted.time_base = frame.pts, frame.time_base
    return converted


def _stale(codec: av.VideoCodecContext | None, frame: av.VideoFrame, bitrate: int) -> bool:
    """Does ``codec`` need (re)opening for ``frame``? aiortc's own rule: no codec, a new size, or a target bitrate
    more than 10 % away from the one it was opened with."""
    return (
        codec is None
        or frame.width != codec.width
        or frame.height != codec.height
        or abs(bitrate - codec.bit_rate) / codec.bit_rate > 0.1
    )


class FastVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder (packetising, bitrate control, keyframes on request) with cheaper settings."""

    def encode(self, frame: av.Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        frame = _as_i420(frame)
        if _stale(self.codec, frame, self.target_bitrate):
            self.codec = self._open(frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        bitrate = self.target_bitrate
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.bit_rate = bitrate
        codec.gop_size = 3000  # keyframes only when the receiver asks (PLI/FIR)
        codec.qmin, codec.qmax = 2, 56
        codec.thread_count = 1
        codec.options = {
            "bufsize": str(bitrate),  # rc_buf_sz = bufsize · 1000 / bit_rate = 1000 ms
            "cpu-used": VP8_SPEED,
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(bitrate),  # minrate = maxrate = bit_rate: constant bitrate
            "maxrate": str(bitrate),
            "noise-sensitivity": "0",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        return codec


class FastH264Encoder(H264Encoder):
    """aiortc's H.264 encoder (Baseline, zero latency, packetising) at a fast x264 preset."""

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool):  # type: ignore[override]
        frame = _as_i420(frame)
        if _stale(self.codec, frame, self.target_bitrate):
            self.buffer_data, self.buffer_pts = b"", None
            self.codec = self._open(frame.width, frame.height)
        return super()._encode_frame(frame, force_keyframe)

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.bit_rate = self.target_bitrate
        codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
        codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
        codec.thread_count = 1
        codec.options = {"level": "31", "tune": "zerolatency", "preset": X264_PRESET}
        codec.profile = "Baseline"
        return codec


VIDEO_ENCODERS = {"video/vp8": FastVp8Encoder, "video/h264": FastH264Encoder}


def install_fast_encoders(peer: RTCPeerConnection) -> None:
    """Give each video sender of the negotiated ``peer`` the fast encoder of its codec.

    Call after ``setLocalDescription(answer)``: the sender's codec is the first
    one both sides accepted. aiortc creates its encoder lazily when the first
    frame is sent, unless one is already in place.
    """
    for transceiver in peer.getTransceivers():
        codecs = getattr(transceiver, "_codecs", None)
        if transceiver.kind != "video" or not codecs:
            continue
        encoder = VIDEO_ENCODERS.get(codecs[0].mimeType.lower())
        if encoder is not None:
            transceiver.sender._RTCRtpSender__encoder = encoder()


class I420Frames:
    """An avatar's frames converted to ``yuv420p`` once, on first use, for every session showing that avatar.

    Idle frames are the same pictures for every session of an avatar: each is
    converted once per process instead of once per session per slot, at each
    size the sessions send (the avatar's own, a page's shown size, the ladder's
    half size). Bounded: the most recently shown conversions up to
    ``CACHE_BYTES`` are kept, all sizes together (a 60-s 720p avatar converted
    whole would hold 2 GB in every process).
    """

    CACHE_BYTES = 128 * 1024 * 1024

    _shared: weakref.WeakKeyDictionary[object, I420Frames] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        self._frames = frames
        self._converted: OrderedDict[tuple[int, tuple[int, int]], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._guard = threading.Lock()

    @classmethod
    def of(cls, avatar: object, frames: Sequence[np.ndarray]) -> I420Frames:
        """The shared conversions of ``avatar`` (kept while the avatar object lives)."""
        with cls._lock:
            shared = cls._shared.get(avatar)
            if shared is None:
                shared = cls._shared[avatar] = cls(frames)
            return shared

    def frame(self, index: int, size: tuple[int, int]) -> av.VideoFrame:
        """A new ``yuv420p`` frame of picture ``index`` at ``size`` (width, height); the caller stamps its pts."""
        key = (index, size)
        with self._guard:
            planes = self._converted.get(key)
            if planes is not None:
                self._converted.move_to_end(key)
        if planes is None:
            planes = i420_planes(resized(self._frames[index], size))
            with self._guard:
                if key not in self._converted:
                    self._converted[key] = planes
                    self._bytes += planes.nbytes
                while self._bytes > self.CACHE_BYTES and len(self._converted) > 1:
                    self._bytes -= self._converted.popitem(last=False)[1].nbytes
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")
