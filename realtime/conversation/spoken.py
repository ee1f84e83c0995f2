"""What of a message was actually spoken: an interrupted answer keeps only the words that went on air.

A message's sentences go on air one after another (``sentence_on_air``). When
an interrupt cuts one mid-way, the share of it already played is the time it
has been on air over its audio's length, which ``MeasuredTTS`` notes for each
sentence as the TTS engine produces it; the text is cut at that share, at a
word boundary (any character in scripts written without spaces).
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from realtime.engines.tts.base import PCM, TTSEngine
from realtime.text.read_aloud import read_aloud

KEPT_DURATIONS = 1024  # sentences whose length is remembered: far more than are ever queued at once


class SentenceDurations:
    """Seconds of audio synthesised for each recent sentence text (the same text gives the same length)."""

    def __init__(self, keep: int = KEPT_DURATIONS) -> None:
        self._seconds: OrderedDict[str, float] = OrderedDict()
        self._keep = keep

    def set(self, text: str, seconds: float) -> None:
        self._seconds[text] = seconds
        self._seconds.move_to_end(text)
        while len(self._seconds) > self._keep:
            self._seconds.popitem(last=False)

    def get(self, text: str) -> float | None:
        return self._seconds.get(text)


class MeasuredTTS(TTSEngine):
    """Passes a shared TTS engine's audio through unchanged, noting each sentence's length as it streams.

    The engine is given the sentence as its language reads it (``read_aloud``: numbers in words for Chinese),
    while lengths stay keyed by the sentence as queued, which is what the spoken-text record holds.
    """

    def __init__(self, engine: TTSEngine, durations: SentenceDurations) -> None:
        super().__init__(engine.voice)
        self.engine = engine
        self.durations = durations

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        seconds = 0.0
        async with aclosing(self.engine.synthesize(read_aloud(text, self.voice.primary_language))) as pieces:
            async for pcm in pieces:
                seconds += pcm.duration
                self.durations.set(text, seconds)  # a running total: a sentence still streaming counts what exists
                yield pcm

    # aclose is inherited and does nothing: the wrapped engine belongs to the pool, which closes it.


@dataclass
class SpokenText:
    """A message's text as queued for speech, and its sentences in the order they went on air."""

    queued: str = ""
    aired: list[tuple[str, float]] = field(default_factory=list)  # (sentence as queued, clock time it went on air)

    def queue(self, text: str) -> None:
        self.queued += text

    def on_air(self, sentence: str, at: float) -> None:
        self.aired.append((sentence, at))

    def full(self) -> str:
        return self.queued.strip()

    def until(self, now: float, duration_of: Callable[[str], float | None]) -> str:
        """The words on air by ``now``: every aired sentence, the last one cut at the share of it played so far."""
        if not self.aired:
            return ""
        *done, (last, at) = self.aired
        seconds = duration_of(last)
        share = 1.0 if not seconds else (now - at) / seconds
        return ("".join(sentence for sentence, _ in done) + cut_text(last, share)).strip()


def cut_text(text: str, share: float) -> str:
    """The start of ``text`` spoken in the first ``share`` (0..1) of its audio, ending at a word boundary."""
    if share >= 1.0:
        return text
    return word_prefix(text, int(len(text) * max(share, 0.0)))


def word_prefix(text: str, max_chars: int) -> str:
    """The longest start of ``text``, at most ``max_chars`` long, that does not end inside a word."""
    end = min(max_chars, len(text))
    while 0 < end < len(text) and _inside_word(text[end - 1], text[end]):
        end -= 1
    return text[:end]


def _inside_word(before: str, after: str) -> bool:
    """Whether a cut between two characters splits a word: neither is a space nor a character of a script
    written without spaces (Chinese, Japanese, Korean: wide characters, their punctuation included)."""
    return not (before.isspace() or after.isspace() or _is_wide(before) or _is_wide(after))


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
