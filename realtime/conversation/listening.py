"""The user's turns: voice activity decides where each starts and ends; the ASR decodes it while the user speaks.

Two tasks per session, joined by a queue: the mic task runs the VAD on the
event loop (about 0.1 ms a chunk) and hands each turn's audio to the
recogniser task, which awaits the ASR engine (decoding runs in a worker
thread). So a slow decode never delays the end-of-turn decision, and at the
end of a turn only the audio not yet decoded (the tail) is left to wait for.

The end of a turn uses both signals: the VAD's silence, and the partial
transcript. Once the partial covers all the speech (the recogniser has taken
the audio up to the speech's end, plus what its engine holds back before it
decodes) and reads as a finished sentence, a short silence ends the turn; a
partial that stops on a word that leads on ("and", "the", "to") waits out the
VAD's full silence window, as does an engine whose partials are not trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime.clock import SessionClock
from realtime.engines.asr.base import ASREngine, ASRError
from realtime.metrics import observe_vad_decision
from realtime.vad import SAMPLE_RATE, EndOfTurn, SpeechStarted, TurnDetector

from .mic import CHUNK_SAMPLES

logger = logging.getLogger(__name__)

# Audio before the VAD's speech start that the ASR also gets: the detector needs a few windows to be sure, and
# pocketsphinx recognises the first word better with a little silence before it.
PRE_ROLL_S = 0.3

SENTENCE_END = frozenset(".?!。？！…")
# Words a sentence does not end on: articles, prepositions, conjunctions, auxiliaries, hesitations.
# fmt: off
LEADS_ON = frozenset({
    "a", "an", "the", "and", "or", "but", "so", "because", "if", "than", "that", "which", "who", "whose", "whom",
    "to", "of", "in", "on", "at", "for", "from", "with", "by", "about", "as", "into", "onto", "over", "under",
    "between", "like", "my", "your", "his", "her", "its", "our", "their", "this", "these", "those", "is", "are",
    "was", "were", "be", "been", "am", "do", "does", "did", "have", "has", "had", "can", "could", "will", "would",
    "shall", "should", "may", "might", "must", "not", "very", "more", "most", "some", "any", "no", "um", "uh", "er",
    "erm", "hmm", "well",
})
# fmt: on


def ends_sentence(text: str) -> bool:
    """Does a partial transcript read as a finished sentence?

    Punctuated text (engines with a punctuation model) ends one with ``.?!。？！``.
    Unpunctuated Latin-script words (pocketsphinx) end one unless the last word
    leads on. Unpunctuated CJK text gives no such clue: it never ends one here.
    """
    text = text.strip()
    if not text:
        return False
    if text[-1] in SENTENCE_END:
        return True
    last = text.split()[-1].lower().strip(",;:'\"")
    return last.isascii() and last.isalpha() and last not in LEADS_ON


class RecognitionEvents(Protocol):
    def partial(self, text: str) -> None:
        """The transcript so far changed."""

    async def final(self, text: str, ended_at: float, asr_ms: int) -> None:
        """The turn that ended at ``ended_at`` (session clock) reads ``text`` ("" when nothing was recognised)."""

    def failed(self, error: ASRError) -> None:
        """The ASR engine failed on this turn; ``final`` still follows, with no text."""


@dataclass(frozen=True)
class _Begin:
    pass


@dataclass(frozen=True)
class _End:
    at: float


class Recogniser:
    """Feeds each turn's audio to the ASR engine as it comes, and reports partial and final transcripts."""

    def __init__(self, asr: ASREngine, clock: SessionClock, events: RecognitionEvents) -> None:
        self.asr = asr
        self.clock = clock
        self.events = events
        self._queue: asyncio.Queue[_Begin | np.ndarray | _End] = asyncio.Queue()  # bounded by one turn's audio
        self._failed = False
        self._undecoded = 0  # samples pushed and not yet through the engine
        self._partial = ""  # of the turn being decoded

    def begin(self) -> None:
        self._queue.put_nowait(_Begin())

    def push(self, chunk: np.ndarray) -> None:
        self._undecoded += len(chunk)
        self._queue.put_nowait(chunk)

    def sentence_done(self, speech_end_behind_s: float) -> bool:
        """Does the partial transcript hold all the speech, which ended ``speech_end_behind_s`` before the newest
        audio pushed, and read as a whole sentence?"""
        lag_s = self.asr.partial_lag_s
        if self._failed or lag_s is None:
            return False
        behind_s = self._undecoded / SAMPLE_RATE + lag_s  # newest audio that may be missing from the partial
        return behind_s <= speech_end_behind_s and ends_sentence(self._partial)

    def end(self, at: float) -> None:
        self._queue.put_nowait(_End(at))

    def use(self, asr: ASREngine) -> None:
        """Recognise with ``asr`` from the next turn on; a turn in progress ends without text."""
        self.asr.reset()
        self.asr = asr
        self._failed = True

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Begin):
                self._failed = False
                self._partial = ""
                self.asr.start()
            elif isinstance(item, _End):
                text = "" if self._failed else await self._finish()
                await self.events.final(text.strip(), item.at, round((self.clock.now() - item.at) * 1000))
            else:
                await self._accept(item)
                self._undecoded -= len(item)

    async def _accept(self, chunk: np.ndarray) -> None:
        if self._failed:
            return
        try:
            partial = await self.asr.accept(chunk)
        except ASRError as exc:
            self._fail(exc)
        else:
            if partial:
                self._partial = partial
                self.events.partial(partial)

    async def _finish(self) -> str:
        try:
            return await self.asr.finish()
        except ASRError as exc:
            self._fail(exc)
            return ""

    def _fail(self, error: ASRError) -> None:
        logger.warning("ASR failed: %s", error)
        self._failed = True
        self.asr.reset()
        self.events.failed(error)


class Listener:
    """Runs the VAD over the mic's 20 ms chunks and passes each accepted turn's audio to the recogniser.

    ``on_speech()`` is asked when speech starts whether to take it as a turn
    (barge-in policy; it may interrupt the avatar first); ``on_end()`` hears
    that an accepted turn ended.
    """

    def __init__(
        self,
        detector: TurnDetector,
        recogniser: Recogniser,
        clock: SessionClock,
        *,
        on_speech: Callable[[], Awaitable[bool]],
        on_end: Callable[[], None],
    ) -> None:
        self.detector = detector
        self.recogniser = recogniser
        self.clock = clock
        self._on_speech = on_speech
        self._on_end = on_end
        keep_s = PRE_ROLL_S + detector.min_speech_s + 0.1  # the speech start lies this far back at most, plus slack
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=int(keep_s * SAMPLE_RATE) // CHUNK_SAMPLES + 1)
        self._samples = 0  # fed since the detector's stream began: its clock, in samples
        self._in_turn = False  # the VAD is inside speech
        self._accepted = False  # ... and this turn goes to the recogniser

    async def feed(self, chunk: np.ndarray) -> None:
        self._recent.append((self._samples, chunk))
        self._samples += len(chunk)
        if self._accepted:
            self.recogniser.push(chunk)
        for event in self.detector.feed(chunk, self._sentence_done if self._accepted else None):
            if isinstance(event, SpeechStarted):
                await self._start(event)
            elif isinstance(event, EndOfTurn):
                observe_vad_decision(event.at_s - event.speech_end_s)
                self._end()

    def _sentence_done(self, speech_end_s: float) -> bool:
        return self.recogniser.sentence_done(self._samples / SAMPLE_RATE - speech_end_s)

    def pause(self) -> None:
        """The gate closed (talk button released): a turn in progress ends here; the next audio starts afresh."""
        if self._in_turn:
            self._end()
        self.detector.reset()
        self._recent.clear()
        self._samples = 0

    async def _start(self, event: SpeechStarted) -> None:
        self._in_turn = True
        self._accepted = await self._on_speech()
        if self._accepted:
            self.recogniser.begin()
            first = (event.speech_start_s - PRE_ROLL_S) * SAMPLE_RATE
            for start, chunk in self._recent:  # the current chunk is the last of them
                if start + len(chunk) > first:
                    self.recogniser.push(chunk)

    def _end(self) -> None:
        if self._accepted:
            self.recogniser.end(self.clock.now())
            self._on_end()
        self._in_turn = self._accepted = False
