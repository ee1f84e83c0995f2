"""RTMP push: a session's avatar, as H.264 + AAC in FLV, to an RTMP server (live-commerce platforms, a CDN).

The publisher reads the very frames the WebRTC tracks send (through an aiortc ``MediaRelay``, so the browser
and the stream see and hear the same thing) and keeps their session-clock timestamps: video and audio stay in
step because both were stamped by one clock. Encoding and the network run in the publisher's own thread (PyAV:
libx264 and FFmpeg's AAC); the event loop only hands frames over through a bounded queue, dropping video, never
blocking, when the encoder falls behind.

A dropped connection never ends the session: the publisher reports ``retrying`` with the error, waits (1 s,
doubling up to ``retry_max_s``) and connects again, starting a new stream from that moment. Every attempt
resolves the host through the outbound policy first and connects to the address it checked (plain ``rtmp``),
so a tenant's URL cannot be turned toward an internal address by DNS.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .net.outbound import OutboundPolicy, OutboundRefused
from .net.redact import RTMP_SCHEMES, redact_url

logger = logging.getLogger(__name__)

MS = fractions.Fraction(1, 1000)  # FLV's time base
# Between the loop and the encoder thread. Audio is never dropped while the stream keeps up at all (the AAC
# encoder stamps its packets by sample count, so a lost packet would pull all later sound ahead of the picture);
# video frames are dropped first when the encoder falls behind, and the picture just holds a moment longer.
AUDIO_QUEUE = 500  # 10 s of 20-ms packets
VIDEO_QUEUE = 25


@dataclass(frozen=True)
class RtmpSettings:
    video_bitrate: int = 1_500_000
    audio_bitrate: int = 128_000
    keyframe_s: float = 2.0  # a keyframe this often: how soon a player joining the stream sees a picture
    preset: str = "veryfast"
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class RtmpStatus:
    """What ``state`` shows about the stream: ``connecting``, ``live``, ``retrying`` or ``stopped``."""

    state: str
    url: str  # without its stream key (the last path part), safe to show
    attempts: int = 0  # connections tried since the last success
    last_error: str = ""
    since: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "url": self.url, "attempts": self.attempts, "last_error": self.last_error}


def check_rtmp_url(url: str, policy: OutboundPolicy) -> None:
    """Save-time check of a tenant's RTMP URL: scheme rtmp/rtmps, no user info, no internal address unless
    allow-listed. Raises ``OutboundRefused``."""
    policy.check_url(url, schemes=RTMP_SCHEMES)
    if not urlsplit(url).path.strip("/"):
        raise OutboundRefused("bad_url", "An RTMP URL needs an application and a stream key in its path.")


class RtmpPublisher:
    """Streams two tracks (audio 48 kHz s16, video with 90 kHz pts) to ``url`` until ``stop``."""

    def __init__(
        self,
        url: str,
        audio: MediaStreamTrack,
        video: MediaStreamTrack,
        *,
        fps: Callable[[], int],
        policy: OutboundPolicy,
        settings: RtmpSettings | None = None,
        on_status: Callable[[RtmpStatus], None] | None = None,
        size: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.url = url
        self.settings = settings or RtmpSettings()
        self.status = RtmpStatus("connecting", redact_url(url))
        self._audio, self._video = audio, video
        self._fps = fps
        self._size = size  # the picture's full (width, height): a degraded session's half-size frames are scaled up
        self._policy = policy
        self._on_status = on_status
        self._queues: dict[str, queue.Queue] = {"audio": queue.Queue(AUDIO_QUEUE), "video": queue.Queue(VIDEO_QUEUE)}
        self.dropped = {"audio": 0, "video": 0}
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: list[asyncio.Task] = []
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._readers = [
            asyncio.create_task(self._read(track), name=f"rtmp.{track.kind}") for track in (self._audio, self._video)
        ]
        self._thread = threading.Thread(target=self._run, name="rtmp-publisher", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop reading, finish the stream (the server gets a clean end) and wait for the thread."""
        self._stopping.set()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 15)
        self._audio.stop()
        self._video.stop()
        self._set(replace(self.status, state="stopped", since=time.time()))

    # --- the event loop's side -------------------------------------------------------------------------------

    async def _read(self, track: MediaStreamTrack) -> None:
        frames = self._queues[track.kind]
        with suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                try:
                    frames.put_nowait(frame)
                except queue.Full:  # the encoder is behind: this frame is lost, later ones keep their time
                    self.dropped[track.kind] += 1

    def _set(self, status: RtmpStatus) -> None:
        self.status = status
        if self._on_status is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_status, status)

    # --- the publisher thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.settings.retry_initial_s
        attempts = 0
        while not self._stopping.is_set():
            attempts += 1
            self._set(replace(self.status, state="connecting", attempts=attempts, since=time.time()))
            try:
                target = self._checked_target()
                self._stream(target, on_live=lambda: self._set(RtmpStatus("live", self.status.url)))
                attempts, delay = 0, self.settings.retry_initial_s  # it was live: the next drop starts afresh
                if self._stopping.is_set():
                    return
                error = "the server closed the stream"
            except OutboundRefused as exc:
                error = str(exc)
            except (av.FFmpegError, OSError, ValueError) as exc:
                error = self._without_key(f"{type(exc).__name__}: {exc}")
            if self._stopping.is_set():
                return
            logger.warning("rtmp %s: %s; again in %.0f s", self.status.url, error, delay)
            self._set(replace(self.status, state="retrying", attempts=attempts, last_error=error, since=time.time()))
            self._drain()
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.settings.retry_max_s)

    def _without_key(self, text: str) -> str:
        """FFmpeg's errors name the URL they failed on; the stream key must not reach logs or the state."""
        key = urlsplit(self.url).path.rpartition("/")[2]
        return text.replace(key, "…") if key else text

    def _checked_target(self) -> str:
        """The URL to connect to: for plain rtmp its host replaced by the address the policy checked."""
        parts = urlsplit(self.url)
        port = parts.port or (1935 if parts.scheme == "rtmp" else 443)
        assert self._loop is not None
        address = asyncio.run_coroutine_threadsafe(self._policy.resolve(parts.hostname or "", port), self._loop)
        ip = address.result(self.settings.connect_timeout_s)
        if parts.scheme != "rtmp":
            return self.url  # rtmps: TLS must see the host name; the address it resolves to was checked just now
        host = f"[{ip}]" if ":" in ip else ip
        return urlunsplit(parts._replace(netloc=f"{host}:{port}"))

    def _stream(self, target: str, on_live: Callable[[], None]) -> None:
        """One connection: encode and send until stopped; raises when the connection fails or drops."""
        first = self._first_video()
        width, height = self._size() if self._size is not None else (first.width, first.height)
        width, height = width // 2 * 2, height // 2 * 2
        timeout = self.settings.connect_timeout_s  # connecting, and each write: a stalled server is a drop
        container = av.open(target, mode="w", format="flv", timeout=(timeout, timeout))
        try:
            video = container.add_stream("libx264", rate=self._fps())
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.bit_rate = self.settings.video_bitrate
            video.time_base = MS
            video.codec_context.time_base = MS
            video.options = {
                "preset": self.settings.preset,
                "tune": "zerolatency",
                "g": str(max(1, round(self.settings.keyframe_s * self._fps()))),
            }
            audio = container.add_stream("aac", rate=48_000, layout="mono")
            audio.bit_rate = self.settings.audio_bitrate
            origin: float | None = None
            on_live()
            for frame in self._frames_from(first):
                at = float(frame.pts * frame.time_base)
                if origin is None:
                    origin = at
                if at < origin:
                    continue
                if isinstance(frame, av.VideoFrame):
                    out = frame.reformat(width=width, height=height, format="yuv420p")
                    out.pts, out.time_base = round((at - origin) * 1000), MS
                    container.mux(video.encode(out))
                else:
                    frame.pts = round((at - origin) * 48_000)
                    frame.time_base = fractions.Fraction(1, 48_000)
                    container.mux(audio.encode(frame))
            for stream in (video, audio):
                container.mux(stream.encode(None))
        finally:
            with suppress(av.FFmpegError, OSError):
                container.close()

    def _frames_from(self, first: av.VideoFrame) -> Iterator[av.AudioFrame | av.VideoFrame]:
        """Every queued audio packet, then a picture, and so on: the muxer interleaves them by time."""
        yield first
        audio, video = self._queues["audio"], self._queues["video"]
        while not self._stopping.is_set():
            with suppress(queue.Empty):
                while True:
                    yield audio.get_nowait()
            with suppress(queue.Empty):
                yield video.get(timeout=0.02)

    def _first_video(self) -> av.VideoFrame:
        """The stream starts at a picture; the sound queued before it is dropped."""
        deadline = time.monotonic() + 5.0
        while not self._stopping.is_set():
            self._drain("audio")
            try:
                return self._queues["video"].get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise OSError("no media from the session to stream") from None
        raise OSError("stopped")

    def _drain(self, *kinds: str) -> None:
        """While disconnected the session goes on: what was queued is stale, and the next stream starts now."""
        for kind in kinds or tuple(self._queues):
            with suppress(queue.Empty):
                while True:
                    self._queues[kind].get_nowait()
