"""The small messages that move between pipeline stages: the whole vocabulary of a session's speech path.

Every item carries the ``generation`` it was made for. An interrupt bumps the
session's generation; each stage drops items of an older one, so nothing queued
before the cut plays after it (DESIGN.md §3).

Flow: ``TextChunk`` → TTS → ``AudioChunk`` (16 kHz) → features → ``FrameJob`` →
render → ``AVSegment`` → player. A ``MessageEnd`` follows the last item of each
message through every stage, in order, so the player knows when the message has
been played out even if it produced no audio at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.engines.lipsync.base import LipSyncRequest

MessageId = int | None  # the assistant Message row's id; None when nobody records it (tests, benchmarks)


@dataclass(frozen=True)
class TextChunk:
    """One sentence (or clause) of a message, as the splitter cut it."""

    generation: int
    message_id: MessageId
    text: str


@dataclass(frozen=True)
class AudioChunk:
    """Synthesised speech of one sentence at 16 kHz int16, in the pieces the TTS engine streams.

    ``sentence`` is the text being spoken (for the subtitle); ``end_of_sentence``
    marks the sentence's last piece (it may be empty), so the features stage can
    pad the sentence to whole video frames.
    """

    generation: int
    message_id: MessageId
    sentence: str
    samples: np.ndarray
    end_of_sentence: bool = False


@dataclass(frozen=True)
class FrameJob:
    """What the renderer needs for one video frame, and the 48 kHz audio that frame covers.

    ``subtitle`` is set on the first frame of each sentence: the player shows it
    when that frame is on screen.
    """

    generation: int
    message_id: MessageId
    request: LipSyncRequest
    audio: np.ndarray  # 48 kHz int16, exactly 48000 / fps samples
    subtitle: str | None = None


@dataclass(frozen=True)
class AVSegment:
    """One rendered video frame (H×W×3 uint8 RGB) and its 1/fps s of 48 kHz int16 audio: they play together."""

    generation: int
    message_id: MessageId
    video: np.ndarray
    audio: np.ndarray
    subtitle: str | None = None


@dataclass(frozen=True)
class MessageEnd:
    """The message ``message_id`` has no more items after this one."""

    generation: int
    message_id: MessageId


PipelineItem = TextChunk | AudioChunk | FrameJob | AVSegment | MessageEnd
