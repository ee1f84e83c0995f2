"""Read an uploaded video with PyAV: upright, at most ``max_side`` pixels, resampled to the avatar's fps.

Every way an upload can be unusable ends here as a ``BadVideo`` with a message an operator can act on,
before any bundle file is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import numpy as np

from realtime.avatar.messages import gettext_noop

from ..media_probe import VIDEO_CONTAINERS, demuxer_options
from .errors import BadVideo

# Magic bytes of the containers people upload, to tell "damaged video" from "not a video at all".
_CONTAINER_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)
_STILL_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif", "tiff_pipe"}
# The demuxers a source may be opened with: self-contained video containers and single-picture readers; never
# hls, concat, image2 (file patterns) or anything else that opens further files or URLs (issue 10, Medium 4).
_DEMUXERS = (*VIDEO_CONTAINERS, "png_pipe", "jpeg_pipe", "webp_pipe")
TRUNCATION_TOLERANCE = 0.9  # decoded span below this share of the declared duration means the file was cut short
# The size refusal names what was uploaded: one whole sentence for each, so each translates as a sentence.
_RESOLUTION_MESSAGES = {
    "video": gettext_noop(
        "The video is %(width)d×%(height)d pixels; avatars need at least %(min_side)d and at most %(max_side)d "
        "pixels on each side, and an aspect ratio of at most %(max_aspect)g:1."
    ),
    "photo": gettext_noop(
        "The photo is %(width)d×%(height)d pixels; avatars need at least %(min_side)d and at most %(max_side)d "
        "pixels on each side, and an aspect ratio of at most %(max_aspect)g:1."
    ),
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeLimits:
    """What the decoder accepts and how far it downscales (from the AVATAR_* settings)."""

    max_side: int
    min_source_side: int
    max_source_side: int
    max_aspect: float
    max_seconds: float
    max_total_pixels: int = 8_000_000_000  # all frames decoded, together: bounds the work one upload can cause


@dataclass(frozen=True)
class VideoInfo:
    """The source as it is displayed (rotation applied) and the frames this reader yields."""

    source_width: int
    source_height: int
    rotation: int  # degrees counter-clockwise turned to display upright: 0, 90, 180 or 270
    width: int
    height: int
    duration: float | None  # seconds, as the container declares it
    codec: str


def _sniff_container(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(16)
    for offset, magic, name in _CONTAINER_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _open_container(path: Path) -> av.container.InputContainer:
    if path.stat().st_size == 0:
        raise BadVideo("not_video", gettext_noop("The file is empty."))
    try:
        return av.open(str(path), mode="r", options=demuxer_options(_DEMUXERS))
    except av.error.FFmpegError as exc:
        logger.info("%s cannot be opened: %s", path.name, exc)  # FFmpeg's words are for the log, not tenants
        kind = _sniff_container(path)
        if kind:
            raise BadVideo(
                "damaged",
                gettext_noop(
                    "The file looks like a %(kind)s video but cannot be opened: it is damaged or truncated. "
                    "Upload the complete file again."
                ),
                kind=kind,
            ) from None
        raise BadVideo(
            "not_video",
            gettext_noop("This file is not a video that can be read. Upload an MP4, MOV, WebM or MKV file."),
        ) from None


def _pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if container.format.name in _STILL_IMAGE_FORMATS:
        raise BadVideo("not_video", gettext_noop("This is a still image, not a video. Upload a video of the person."))
    # Cover art in music files is a one-picture "video" stream; it is not footage of a person.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if streams:
        return streams[0]
    if container.streams.audio:
        raise BadVideo(
            "audio_only", gettext_noop("The file contains only audio, no video. Upload a video of the person.")
        )
    raise BadVideo("no_video", gettext_noop("The file contains no video stream. Upload a video of the person."))


def _declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def check_resolution(
    width: int, height: int, limits: DecodeLimits, source: Literal["video", "photo"] = "video"
) -> None:
    """Refuse a ``source`` ("video" or "photo") whose size is outside the avatar limits; unknown sizes (0) pass."""
    if not width or not height:
        return
    short, long = sorted((width, height))
    if short < limits.min_source_side or long > limits.max_source_side or long / short > limits.max_aspect:
        raise BadVideo(
            "resolution",
            _RESOLUTION_MESSAGES[source],
            width=width,
            height=height,
            min_side=limits.min_source_side,
            max_side=limits.max_source_side,
            max_aspect=limits.max_aspect,
        )


def _too_long(seconds: float, limits: DecodeLimits) -> BadVideo:
    return BadVideo(
        "too_long",
        gettext_noop("The video is %(seconds).1f s long; the limit is %(limit)g s (AVATAR_MAX_SECONDS). Trim it."),
        seconds=seconds,
        limit=limits.max_seconds,
    )


class VideoReader:
    """An opened, validated upload. Opening decodes the first frame: that finds zero-frame and unreadable
    streams early and reads the rotation, which FFmpeg attaches to decoded frames as a display matrix."""

    def __init__(self, path: str | Path, limits: DecodeLimits) -> None:
        self.path = Path(path)
        self.limits = limits
        self.position = 0.0  # seconds decoded so far, for progress and error messages
        self._size: tuple[int, int] | None = None  # every frame must keep the first frame's size
        self._pixels = 0
        self._container = _open_container(self.path)
        try:
            self._stream = _pick_video_stream(self._container)
            self._check_declared()
            self._decoded = self._container.decode(self._stream)
            self._first = self._next_frame()
            if self._first is None:
                raise BadVideo("no_frames", gettext_noop("The video stream contains no frames."))
            self.info = self._describe(self._first)
        except BaseException:
            self._container.close()
            raise

    def _check_declared(self) -> None:
        codec = self._stream.codec_context
        check_resolution(codec.width, codec.height, self.limits)
        duration = _declared_duration(self._container, self._stream)
        if duration is not None and duration > self.limits.max_seconds:
            raise _too_long(duration, self.limits)

    def _describe(self, first: av.VideoFrame) -> VideoInfo:
        check_resolution(first.width, first.height, self.limits)
        rotation = (round((first.rotation or 0) / 90) * 90) % 360
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        scale = min(1.0, self.limits.max_side / max(width, height))
        return VideoInfo(
            source_width=width,
            source_height=height,
            rotation=rotation,
            width=max(1, round(width * scale)),
            height=max(1, round(height * scale)),
            duration=_declared_duration(self._container, self._stream),
            codec=self._stream.codec_context.name,
        )

    def _next_frame(self) -> av.VideoFrame | None:
        try:
            frame = next(self._decoded)
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            logger.info("%s: decoding failed after %.1f s: %s", self.path.name, self.position, exc)
            raise BadVideo(
                "damaged",
                gettext_noop(
                    "Decoding failed after %(seconds).1f s of video: the file is damaged or truncated. "
                    "Upload the complete file again."
                ),
                seconds=self.position,
            ) from None
        self._check_frame(frame)
        return frame

    def _check_frame(self, frame: av.VideoFrame) -> None:
        """Every decoded frame, not only the declared size and the first: a stream may change size midway."""
        size = (frame.width, frame.height)
        if self._size is None:
            check_resolution(*size, self.limits)
            self._size = size
        elif size != self._size:
            raise BadVideo(
                "frame_size_changed",
                gettext_noop(
                    "The frames change size after %(seconds).1f s (%(width)d×%(height)d to "
                    "%(new_width)d×%(new_height)d); avatars need one size throughout. Export the video again."
                ),
                seconds=self.position,
                width=self._size[0],
                height=self._size[1],
                new_width=size[0],
                new_height=size[1],
            )
        self._pixels += frame.width * frame.height
        if self._pixels > self.limits.max_total_pixels:
            raise BadVideo(
                "too_much_video", gettext_noop("The video holds more picture data than an avatar may. Shorten it.")
            )

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """One decoded frame as upright RGB uint8 at the output size."""
        info = self.info
        turns = info.rotation // 90
        stored_w, stored_h = (info.height, info.width) if turns % 2 else (info.width, info.height)
        if (stored_w, stored_h) == (frame.width, frame.height):
            rgb = frame.to_ndarray(format="rgb24")
        else:  # swscale's area filter: the downscale happens in C, on the way to RGB
            rgb = frame.to_ndarray(format="rgb24", width=stored_w, height=stored_h, interpolation="AREA")
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb

    def frames(self, fps: int) -> Iterator[np.ndarray]:
        """Frames at ``fps``, chosen by presentation time: output tick k shows the last source frame shown at
        k/fps. Variable frame rates come out even; a frame may repeat (yielded again as the same array, so
        consumers must not modify it) and frames between ticks are skipped without being converted."""
        first = self._first
        if first is None:
            raise RuntimeError("VideoReader.frames() can be iterated once")
        self._first = None
        nominal = 1 / Fraction(self._stream.guessed_rate or fps)
        start = self._time(first, None)
        max_ticks = int(self.limits.max_seconds * fps)
        tick = 0
        pending, pending_time, rgb = first, Fraction(0), None
        while pending is not None:
            frame = self._next_frame()
            if frame is None:  # the last frame lasts its own duration
                until = pending_time + self._frame_duration(pending, nominal)
                self._check_complete(float(until))
            else:
                until = self._time(frame, start + pending_time + nominal) - start
                if until <= pending_time:  # a repeated or out-of-order timestamp: the later frame wins
                    pending, rgb = frame, None
                    continue
            while Fraction(tick, fps) < until:
                if tick >= max_ticks:
                    raise _too_long(float(until), self.limits)
                rgb = self.to_rgb(pending) if rgb is None else rgb
                yield rgb
                tick += 1
            pending, pending_time, rgb = frame, until, None
            self.position = float(until)

    def _time(self, frame: av.VideoFrame, fallback: Fraction | None) -> Fraction:
        if frame.pts is None or frame.time_base is None:
            return fallback if fallback is not None else Fraction(0)
        return frame.pts * frame.time_base

    @staticmethod
    def _frame_duration(frame: av.VideoFrame, nominal: Fraction) -> Fraction:
        if frame.duration and frame.time_base is not None:
            return frame.duration * frame.time_base
        return nominal

    def _check_complete(self, decoded: float) -> None:
        declared = self.info.duration
        if declared and decoded < declared * TRUNCATION_TOLERANCE:
            raise BadVideo(
                "truncated",
                gettext_noop(
                    "The video stops after %(seconds).1f s but its container says %(declared).1f s: the file is "
                    "truncated. Upload the complete file again."
                ),
                seconds=decoded,
                declared=declared,
            )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
