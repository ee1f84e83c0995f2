"""MessageLedger: the record of what a session says and when — each message's text as it is queued and as it goes
on air, and its timings on the session clock (first TTS audio, first frame on air, end on air).

A message is open from its ``say`` (or the end of the user's turn, for an
answer) until it has played or an interrupt cut it; then its
``MessageTimings`` are final. An interrupted message keeps only the words that
went on air (``conversation.spoken``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .clock import SessionClock
from .conversation.spoken import SentenceDurations, SpokenText
from .pipeline import MessageStream


@dataclass(frozen=True)
class MessageTimings:
    """Milliseconds from the start of the turn (the ``say``, or the end of the user's spoken turn) to each point;
    None when the message never got that far. ``text`` is what was said: all of it, or when ``interrupted`` the
    words that went on air before the cut. The field names are the stored Message's."""

    tts_first_audio_ms: int | None
    first_frame_ms: int | None
    total_ms: int
    interrupted: bool
    asr_ms: int | None = None
    llm_first_token_ms: int | None = None
    text: str = ""


@dataclass
class _Utterance:
    said_at: float
    asr_ms: int | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None
    first_frame_at: float | None = None
    spoken: SpokenText = field(default_factory=SpokenText)

    def timings(self, now: float, *, interrupted: bool, durations: SentenceDurations) -> MessageTimings:
        def ms(at: float | None) -> int | None:
            return None if at is None else max(0, round((at - self.said_at) * 1000))

        return MessageTimings(
            tts_first_audio_ms=ms(self.first_audio_at),
            first_frame_ms=ms(self.first_frame_at),
            total_ms=ms(now),
            interrupted=interrupted,
            asr_ms=self.asr_ms,
            llm_first_token_ms=ms(self.first_token_at),
            text=self.spoken.until(now, durations.get) if interrupted else self.spoken.full(),
        )


class MessageWriter:
    """An answer streaming in (the conversation's ``AnswerWriter``): queues its chunks, notes its first token."""

    def __init__(self, utterance: _Utterance, stream: MessageStream, clock: SessionClock) -> None:
        self.message_id = stream.message_id
        self._utterance = utterance
        self._stream = stream
        self._clock = clock

    @property
    def text(self) -> str:
        return self._utterance.spoken.queued

    def first_token(self) -> None:
        if self._utterance.first_token_at is None:
            self._utterance.first_token_at = self._clock.now()

    async def add(self, text: str) -> None:
        self._utterance.spoken.queue(text)
        await self._stream.add(text)

    async def end(self) -> None:
        await self._stream.end()


class MessageLedger:
    """The open messages of one session and how long each sentence sounds (where an interrupt cut it)."""

    def __init__(self, clock: SessionClock) -> None:
        self.clock = clock
        self.durations = SentenceDurations()  # filled by ``MeasuredTTS`` as the TTS engine speaks
        self._open: dict[int, _Utterance] = {}

    @property
    def busy(self) -> bool:
        """A message is on air or on its way there."""
        return bool(self._open)

    def open(self, message_id: int, *, started_at: float, asr_ms: int | None = None) -> None:
        """A message whose timings count from ``started_at`` (session clock)."""
        self._open[message_id] = _Utterance(started_at, asr_ms=asr_ms)

    def queued(self, message_id: int, text: str) -> None:
        """``text`` of an open message went into the speech queue."""
        self._open[message_id].spoken.queue(text)

    def discard(self, message_id: int) -> None:
        """A message that never got queued."""
        self._open.pop(message_id, None)

    def writer(self, message_id: int, stream: MessageStream) -> MessageWriter:
        return MessageWriter(self._open[message_id], stream, self.clock)

    def audio_started(self, message_id: int) -> None:
        utterance = self._open.get(message_id)
        if utterance is not None and utterance.first_audio_at is None:
            utterance.first_audio_at = self.clock.now()

    def on_air(self, message_id: int, text: str) -> bool:
        """A sentence went on air (or, failed, was shown only); False when the message is no longer open."""
        utterance = self._open.get(message_id)
        if utterance is None:
            return False
        now = self.clock.now()
        if utterance.first_frame_at is None:
            utterance.first_frame_at = now
        utterance.spoken.on_air(text, now)
        return True

    def shown(self, message_id: int, text: str) -> None:
        """A sentence that could not be spoken: its words count as said (the page shows them) but not its frames."""
        utterance = self._open.get(message_id)
        if utterance is not None:
            utterance.spoken.on_air(text, self.clock.now())

    def played(self, message_id: int) -> MessageTimings | None:
        """The message has played to its end: its final timings (None when it was no longer open)."""
        utterance = self._open.pop(message_id, None)
        if utterance is None:
            return None
        return utterance.timings(self.clock.now(), interrupted=False, durations=self.durations)

    def heard(self, message_id: int) -> str:
        """The words of an open message on air by now: what an interrupt now would keep ("" when not open)."""
        utterance = self._open.get(message_id)
        return "" if utterance is None else utterance.spoken.until(self.clock.now(), self.durations.get)

    def cut(self) -> list[tuple[int, MessageTimings]]:
        """Close every open message as interrupted now; their timings, oldest first."""
        cut, self._open = self._open, {}
        now = self.clock.now()
        return [(mid, u.timings(now, interrupted=True, durations=self.durations)) for mid, u in cut.items()]
