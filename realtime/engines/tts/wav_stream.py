"""Parse a WAV byte stream incrementally, yielding PCM as soon as it arrives.

Streaming producers (``espeak-ng --stdout``, GPT-SoVITS in streaming mode) write
the RIFF header before they know the length, so the size fields are placeholders:
everything after the ``data`` chunk header is taken as samples until the stream ends.
"""

from __future__ import annotations

import struct

import numpy as np

from .base import TTSError

_PCM_FORMAT = 1
_EXTENSIBLE_FORMAT = 0xFFFE


class WavStreamParser:
    """Feed bytes in any pieces; get mono int16 samples back once the header has been read."""

    def __init__(self) -> None:
        self._buffer = b""
        self._in_data = False
        self.sample_rate = 0
        self.channels = 0

    def feed(self, data: bytes) -> np.ndarray:
        """Return the whole samples now available (possibly none). Raises TTSError on a stream that is not PCM16 WAV."""
        self._buffer += data
        if not self._in_data and not self._read_header():
            return np.zeros(0, np.int16)
        frame_bytes = 2 * self.channels
        usable = len(self._buffer) - len(self._buffer) % frame_bytes
        chunk, self._buffer = self._buffer[:usable], self._buffer[usable:]
        samples = np.frombuffer(chunk, dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        return samples.astype(np.int16)

    def _read_header(self) -> bool:
        """Consume RIFF/fmt/other chunks up to the data chunk; False while more bytes are needed."""
        buf = self._buffer
        if len(buf) < 12:
            return False
        if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
            raise TTSError(f"Expected a WAV stream, got bytes starting {buf[:12]!r}")
        offset = 12
        while len(buf) >= offset + 8:
            chunk_id, size = buf[offset : offset + 4], struct.unpack("<I", buf[offset + 4 : offset + 8])[0]
            body = offset + 8
            if chunk_id == b"data":
                if not self.sample_rate:
                    raise TTSError("WAV stream has a data chunk before its fmt chunk")
                self._buffer = buf[body:]
                self._in_data = True
                return True
            if len(buf) < body + size:
                return False
            if chunk_id == b"fmt ":
                self._read_format(buf[body : body + size])
            offset = body + size + (size & 1)  # RIFF chunks are word-aligned
        return False

    def _read_format(self, fmt: bytes) -> None:
        audio_format, channels, sample_rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
        if audio_format not in (_PCM_FORMAT, _EXTENSIBLE_FORMAT) or bits != 16:
            raise TTSError(f"Unsupported WAV encoding (format {audio_format}, {bits} bits); expected 16-bit PCM")
        self.channels = channels
        self.sample_rate = sample_rate
