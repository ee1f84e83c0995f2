"""WebRTC for tests and benchmarks: an aiortc client peer that records every frame it decodes, and helpers to
read what arrived (first timestamps, loudness, mouth movement)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from realtime.face.mesh import FaceLandmarker
from realtime.face.topology import mouth_opening


@dataclass(frozen=True)
class Received:
    """One decoded frame: its pts (relative to the stream's first, as aiortc's receiver gives it), when it
    arrived (loop time), and its samples (audio: mono int16 at 48 kHz) or pixels (video: H×W×3 RGB)."""

    pts: int
    arrived: float
    data: np.ndarray


@dataclass
class ReceivingPeer:
    """A client peer connection that asks for audio and video and keeps every frame it decodes."""

    peer: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    audio: list[Received] = field(default_factory=list)
    video: list[Received] = field(default_factory=list)
    _readers: list[asyncio.Task] = field(default_factory=list)

    microphone: bool = False  # also send audio (aiortc's silent test tone), as a page with a mic does

    def __post_init__(self) -> None:
        self.peer.on("track", self._on_track)
        if self.microphone:
            self.peer.addTrack(AudioStreamTrack())
        else:
            self.peer.addTransceiver("audio", direction="recvonly")
        self.peer.addTransceiver("video", direction="recvonly")

    async def offer(self) -> str:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        return self.peer.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.peer.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def close(self) -> None:
        await self.peer.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    channels = len(frame.layout.channels)
                    data = frame.to_ndarray().reshape(-1, channels)[:, 0].copy()
                    self.audio.append(Received(frame.pts, loop.time(), data))
                else:
                    self.video.append(Received(frame.pts, loop.time(), frame.to_ndarray(format="rgb24")))
        except MediaStreamError:
            pass


def spy_first_pts(live) -> dict[str, int]:
    """Note the pts of the first frame each server track hands to its sender; the client's pts count from it."""
    first: dict[str, int] = {}
    for track in (live.audio_track, live.video_track):
        original = track.recv

        async def recv(original=original, kind=track.kind):
            frame = await original()
            first.setdefault(kind, frame.pts)
            return frame

        track.recv = recv
    return first


def spy_wire(live) -> dict[str, dict[int, float]]:
    """When each of the session's senders put each frame on the wire, encoded (session-clock seconds), by kind and
    by the pts its track gave the frame (video 90 kHz, audio 48 kHz). Call it once media flows (the senders exist
    from the answer on)."""
    sent: dict[str, dict[int, float]] = {"audio": {}, "video": {}}
    for sender in live.peer.connection.getSenders():
        track, taken = sender.track, [0]
        original_recv, original_encode = track.recv, sender._next_encoded_frame

        async def recv(original=original_recv, taken=taken):
            frame = await original()
            taken[0] = frame.pts
            return frame

        async def next_encoded(codec, original=original_encode, taken=taken, kind=track.kind):
            encoded = await original(codec)  # takes one frame from the track and encodes it
            if encoded is not None:
                sent[kind].setdefault(taken[0], live.clock.now())
            return encoded

        track.recv = recv
        sender._next_encoded_frame = next_encoded  # RTCRtpSender looks both up for every frame
    return sent


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def mouth_change(frame: np.ndarray, reference: np.ndarray, box) -> float:
    """Mean absolute difference between two pictures around the mouth box (0 for an unchanged mouth)."""
    x1, y1, x2, y2 = box
    x1, y1, x2, y2 = x1 - 4, y1 - 4, x2 + 4, y2 + 16  # the warp also moves the lower lip and chin
    return float(np.abs(frame[y1:y2, x1:x2].astype(np.int16) - reference[y1:y2, x1:x2].astype(np.int16)).mean())


MOUTH_TRAVEL = 0.03  # face heights between the most closed and the most open lips of a spoken phrase


def mouth_openings(pictures: Iterable[np.ndarray]) -> list[float]:
    """The lips' opening (face heights) in each picture where the face mesh finds a face: what a viewer sees move,
    measured independently of how the engine drew it."""
    landmarker = FaceLandmarker()
    found = (landmarker.landmarks(picture) for picture in pictures)
    return [float(mouth_opening(face.points)) for face in found if face is not None]
