"""What an uploaded or stored media file really is, found by opening it, never by its name.

Every tenant file the platform reads goes through ``open_input``: FFmpeg may
pick only a demuxer from an allow-list of self-contained containers, and may
open no protocol but the file itself. So a playlist (hls), a concat list, an
image2 pattern or a ``.mov`` with external data references cannot make the
server read another file, and an HTML page does not pass as anything.

Django-free: the upload checks (``avatars_app.uploads``) and the avatar
builder's decoder both call it with plain arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av
from PIL import Image, UnidentifiedImageError

# FFmpeg demuxer name → the extension a file of that kind is stored under.
VIDEO_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "mkv", "avi": "avi"}
AUDIO_CONTAINERS = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "matroska,webm": "mka",
}
# What the first bytes of a video file look like (offset, magic): a file that starts like one but does not open
# is damaged or truncated, not some other kind of file.
_VIDEO_SIGNATURES = ((4, b"ftyp"), (4, b"moov"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"))
# Pillow format → extension; only these decoders are ever tried (no EPS, no plugins that shell out).
STILL_IMAGES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class MediaRefused(ValueError):
    """The file is not the kind of media it must be. ``code`` is stable; the message is English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def demuxer_options(demuxers: Iterable[str]) -> dict[str, str]:
    """FFmpeg open options that allow only ``demuxers`` and no protocol but the file itself."""
    return {
        "format_whitelist": ",".join(demuxers),
        "protocol_whitelist": "file",  # nested opens (playlists, drefs) get nothing else
        "enable_drefs": "0",  # mov: never follow external data references (FFmpeg's default, made explicit)
    }


def open_input(source: str | Path | IO[bytes], containers: dict[str, str]) -> av.container.InputContainer:
    """Open ``source`` with only the demuxers in ``containers`` and no protocol but the file itself.

    Raises MediaRefused("not_media") when no allowed demuxer can read it.
    """
    options = demuxer_options(containers)
    target = str(source) if isinstance(source, str | Path) else source
    try:
        return av.open(target, mode="r", options=options)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise MediaRefused("not_media", f"not a readable {'/'.join(sorted(set(containers.values())))} file") from exc


def container_extension(container: av.container.InputContainer, containers: dict[str, str]) -> str:
    return containers[container.format.name]


@dataclass(frozen=True)
class AudioProbe:
    extension: str
    seconds: float


def probe_audio(source: IO[bytes], *, max_seconds: float) -> AudioProbe:
    """Decode the whole file as audio (at most ``max_seconds``); its stored extension and duration."""
    with open_input(source, AUDIO_CONTAINERS) as container:
        if not container.streams.audio:
            raise MediaRefused("no_audio", "the file has no audio stream")
        stream = container.streams.audio[0]
        seconds = 0.0
        try:
            for frame in container.decode(stream):
                seconds += frame.samples / (frame.sample_rate or 1)
                if seconds > max_seconds:
                    raise MediaRefused("too_long", f"longer than {max_seconds:g} s")
        except av.error.FFmpegError as exc:
            raise MediaRefused("damaged", "the audio cannot be decoded") from exc
        if seconds <= 0:
            raise MediaRefused("no_audio", "the file holds no sound")
        return AudioProbe(container_extension(container, AUDIO_CONTAINERS), seconds)


def probe_video(source: IO[bytes], *, max_pixels: int) -> str:
    """Check that the file is a video in an allowed container whose first frame decodes; its extension."""
    try:
        container = open_input(source, VIDEO_CONTAINERS)
    except MediaRefused:
        source.seek(0)
        head = source.read(16)
        if any(head[offset : offset + len(magic)] == magic for offset, magic in _VIDEO_SIGNATURES):
            raise MediaRefused("damaged", "the video cannot be opened: damaged or truncated") from None
        raise
    with container:
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            raise MediaRefused("no_video", "the file has no video stream")
        stream = streams[0]
        if stream.codec_context.width * stream.codec_context.height > max_pixels:
            raise MediaRefused("too_large", "the frames are too large")
        try:
            frame = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise MediaRefused("damaged", "the video cannot be decoded") from exc
        if frame is None:
            raise MediaRefused("no_frames", "the video has no frames")
        if frame.width * frame.height > max_pixels:
            raise MediaRefused("too_large", "the frames are too large")
        return container_extension(container, VIDEO_CONTAINERS)


def probe_image(source: IO[bytes], *, max_pixels: int) -> str | None:
    """The extension of a JPEG, PNG or WebP still image (decoded whole, within ``max_pixels``); None if the
    file is no such image. Raises MediaRefused for one that is too large or damaged."""
    source.seek(0)
    try:
        image = Image.open(source, formats=list(STILL_IMAGES))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    with image:
        if image.width * image.height > max_pixels:
            raise MediaRefused("too_large", "the image is too large")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaRefused("damaged", "the image cannot be decoded") from exc
        return STILL_IMAGES[image.format]
