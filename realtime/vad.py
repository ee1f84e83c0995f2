"""Voice activity and end of turn: silero-vad over the 16 kHz mic stream, decided per 32 ms window.

The silero model (an ONNX session, from the silero-vad wheel: no download)
loads once per process and serves every session. Each session's detector
keeps its own recurrent state, so streams never mix. A 20-ms chunk costs
about 0.13 ms (``python -m bench.voice_input``), so ``TurnDetector.feed``
runs on the event loop: an executor hop would cost more than the work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 512  # samples per silero call at 16 kHz (32 ms): the only size the model accepts
CONTEXT = 64  # samples of the previous window that silero expects in front of each window
STATE_SHAPE = (2, 1, 128)


class SileroModel:
    """The shared silero-vad ONNX session; stateless itself, so one serves all sessions and threads.

    ``load_silero_vad`` returns a wrapper that keeps one stream's state on
    itself; only its ONNX session is kept here, and each TurnDetector holds
    the state of its own stream.
    """

    _shared: SileroModel | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import torch

        # Importing silero_vad sets torch to one thread for the whole process; keep the process's setting.
        threads = torch.get_num_threads()
        from silero_vad import load_silero_vad

        torch.set_num_threads(threads)
        self._session = load_silero_vad(onnx=True).session
        self._sample_rate = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def shared(cls) -> SileroModel:
        """The process's model, loaded on first use (about 0.1 s once torch is imported)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def probability(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one window (float32, CONTEXT + WINDOW samples in [-1, 1]) and the next state."""
        output, next_state = self._session.run(
            None, {"input": window[np.newaxis, :], "state": state, "sr": self._sample_rate}
        )
        return float(output[0, 0]), next_state


@dataclass(frozen=True)
class SpeechStarted:
    """Speech has lasted the minimum length; ``speech_start_s`` is where it began (stream seconds)."""

    speech_start_s: float
    at_s: float


@dataclass(frozen=True)
class EndOfTurn:
    """The speaker stopped: silence since ``speech_end_s`` has lasted the silence window, decided at ``at_s``."""

    speech_start_s: float
    speech_end_s: float
    at_s: float


VADEvent = SpeechStarted | EndOfTurn


class TurnDetector:
    """Turns a 16 kHz int16 stream (any chunk size; 20 ms in the pipeline) into speech-start and end-of-turn events.

    Speech starts when silero's probability stays at or above ``threshold``
    for ``min_speech_ms`` (shorter sounds, a cough or a click, are ignored). The turn
    ends ``silence_ms`` after the probability fell under ``threshold``, once it
    is under ``threshold - 0.15`` (hysteresis, as silero's authors recommend:
    a dip into the band between them is not yet silence). It ends after only
    ``sentence_silence_ms`` when the ``complete`` callback given to ``feed``
    says the words so far already make a whole sentence (the recogniser's
    partial transcript): a finished question need not wait out the full window
    meant for a speaker who pauses mid-sentence. Times are seconds of audio fed
    since creation (or ``reset``).
    """

    def __init__(
        self,
        *,
        silence_ms: int,
        min_speech_ms: int,
        sentence_silence_ms: int | None = None,
        threshold: float = 0.5,
        model: SileroModel | None = None,
    ) -> None:
        self.silence_s = silence_ms / 1000
        self.sentence_silence_s = min(silence_ms, sentence_silence_ms or silence_ms) / 1000
        self.min_speech_s = min_speech_ms / 1000
        self.threshold = threshold
        self.silence_threshold = threshold - 0.15
        self._model = model or SileroModel.shared()
        self.reset()

    def reset(self) -> None:
        """Start a new stream: clock, model state and turn state back to zero."""
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._window = np.zeros(CONTEXT + WINDOW, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._windows_done = 0
        self._speaking = False
        self._speech_start_s: float | None = None
        self._silence_start_s: float | None = None

    @property
    def speaking(self) -> bool:
        """Whether a turn is in progress (speech started and its end not yet decided)."""
        return self._speaking

    def feed(self, pcm: np.ndarray, complete: Callable[[float], bool] | None = None) -> list[VADEvent]:
        """Add int16 samples; return the events they complete (at most one per 32 ms window).

        ``complete(speech_end_s)`` is asked, once the short sentence silence has
        passed, whether what was said up to ``speech_end_s`` is a whole sentence.
        """
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32) / 32768.0])
        events = []
        while len(self._pending) >= WINDOW:
            # The model sees the last CONTEXT samples of the previous window in front of this one.
            self._window[:CONTEXT] = self._window[-CONTEXT:]
            self._window[CONTEXT:] = self._pending[:WINDOW]
            self._pending = self._pending[WINDOW:]
            probability, self._state = self._model.probability(self._window, self._state)
            start_s = self._windows_done * WINDOW / SAMPLE_RATE
            self._windows_done += 1
            if event := self._step(probability, start_s, start_s + WINDOW / SAMPLE_RATE, complete):
                events.append(event)
        return events

    def _step(
        self, probability: float, start_s: float, end_s: float, complete: Callable[[float], bool] | None
    ) -> VADEvent | None:
        if probability >= self.threshold:
            self._silence_start_s = None
            if self._speech_start_s is None:
                self._speech_start_s = start_s
            if not self._speaking and end_s - self._speech_start_s >= self.min_speech_s - 1e-9:
                self._speaking = True
                return SpeechStarted(self._speech_start_s, end_s)
            return None
        if not self._speaking:
            if probability < self.silence_threshold:
                self._speech_start_s = None  # a sound shorter than the minimum speech length
            return None
        # Silence is timed from the first window under the threshold, but only a window under the lower
        # silence threshold can end the turn: a dip into the band between them neither ends nor resets it.
        if self._silence_start_s is None:
            self._silence_start_s = start_s
        silent_s = end_s - self._silence_start_s + 1e-9
        if probability < self.silence_threshold and (
            silent_s >= self.silence_s
            or (silent_s >= self.sentence_silence_s and complete is not None and complete(self._silence_start_s))
        ):
            event = EndOfTurn(self._speech_start_s, self._silence_start_s, end_s)
            self._speaking = False
            self._speech_start_s = self._silence_start_s = None
            return event
        return None
