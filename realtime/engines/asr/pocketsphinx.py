"""Offline English recognition with pocketsphinx (acoustic model, dictionary and language model ship in the wheel).

Measured here (``python -m bench.voice_input``): a Decoder takes about
0.3-0.5 s and 90 MB to create, because each loads its own copy of the models,
while one utterance only needs it for the turn. So decoders live in a
per-process pool and a session leases one per utterance: the pool grows to
the number of utterances being decoded at once, not the number of sessions.

pocketsphinx holds the GIL while it decodes, so a worker thread does not
free the event loop by itself; what bounds the loop's stall is the size of
each pocketsphinx call, hence ``PIECE_SAMPLES``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import numpy as np
from pocketsphinx import Decoder

from realtime.engines.asr.base import ASREngine, ASRError
from realtime.engines.base import EngineUnavailable

# Audio gathered per trip to the worker thread (80 ms): partials up to 12 times a second, so that when the user
# stops, the partial holds their last word within a short silence and can end the turn (conversation.listening).
BLOCK_SAMPLES = 1_280
PIECE_SAMPLES = 640  # audio per pocketsphinx call (40 ms): a few ms holding the GIL, then the loop may run
# No second "flat" search pass at the end of an utterance: end_utt drops from about 75 ms to under 10 ms of
# GIL-held work (the event loop of every session in the process stalls that long) for a word error rate of
# 0.076 instead of 0.063 on eight Piper sentences.
DECODER_OPTIONS = {"fwdflat": False}


class Recogniser:
    """A pocketsphinx Decoder and whether it is inside an utterance (it refuses to start or end one twice)."""

    def __init__(self) -> None:
        self.decoder = Decoder(samprate=ASREngine.sample_rate, logfn=os.devnull, **DECODER_OPTIONS)
        self.in_utterance = False

    def begin(self) -> None:
        if self.in_utterance:
            self.decoder.end_utt()  # left open by an abandoned utterance
        self.decoder.start_utt()
        self.in_utterance = True

    def decode(self, pcm: np.ndarray) -> str:
        for start in range(0, len(pcm), PIECE_SAMPLES):
            self.decoder.process_raw(pcm[start : start + PIECE_SAMPLES].tobytes(), full_utt=False)
        return self.text()

    def end(self) -> str:
        try:
            self.decoder.end_utt()
        finally:
            self.in_utterance = False
        return self.text()

    def text(self) -> str:
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""


class DecoderPool:
    """Idle recognisers of this process, created on demand. ``acquire`` may block for a model load: call it off-loop."""

    def __init__(self, factory: Callable[[], Recogniser] = Recogniser) -> None:
        self._factory = factory
        self._idle: list[Recogniser] = []
        self._lock = threading.Lock()
        self.created = 0

    def acquire(self) -> Recogniser:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
        return self._factory()

    def release(self, recogniser: Recogniser) -> None:
        with self._lock:
            self._idle.append(recogniser)

    def warm(self) -> None:
        """Make sure one recogniser is ready, so the first utterance does not pay for the model load."""
        with self._lock:
            if self._idle or self.created:
                return
        self.release(self.acquire())


shared_pool = DecoderPool()


class _Utterance:
    """One utterance's decoding state. Worker threads touch only this object, so ``reset`` can drop it whole."""

    def __init__(self, pool: DecoderPool) -> None:
        self.pool = pool
        self.recogniser: Recogniser | None = None
        self.pending: list[np.ndarray] = []
        self.pending_samples = 0
        self.partial = ""
        self.busy: asyncio.Future | None = None

    def take_pending(self) -> np.ndarray:
        samples = np.concatenate(self.pending) if self.pending else np.zeros(0, np.int16)
        self.pending, self.pending_samples = [], 0
        return samples

    def decode(self, pcm: np.ndarray, final: bool) -> str:
        """Runs in a worker thread."""
        if self.recogniser is None:
            self.recogniser = self.pool.acquire()
            self.recogniser.begin()
        text = self.recogniser.decode(pcm)
        return self.recogniser.end() if final else text

    def release_when_idle(self) -> None:
        """Give the recogniser back once no worker uses it (a cancelled await does not stop the thread)."""
        if self.busy is None or self.busy.done():
            self._release()
        else:
            self.busy.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        if self.busy is not None and not self.busy.cancelled():
            self.busy.exception()  # mark a failure of an abandoned decode as seen
        if self.recogniser is not None:
            self.pool.release(self.recogniser)
            self.recogniser = None


class PocketsphinxASR(ASREngine):
    """Streaming English recognition: decodes every 80 ms of speech as it arrives, in a worker thread."""

    partial_lag_s = BLOCK_SAMPLES / 16_000

    def __init__(self, pool: DecoderPool | None = None) -> None:
        self._pool = pool or shared_pool
        self._utterance: _Utterance | None = None

    async def load(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._pool.warm)
        except (RuntimeError, ValueError) as exc:  # what Decoder raises for missing or unreadable model files
            raise EngineUnavailable(f"pocketsphinx could not load its model: {exc}") from exc

    def start(self) -> None:
        self.reset()
        self._utterance = _Utterance(self._pool)

    async def accept(self, pcm16k: np.ndarray) -> str | None:
        if self._utterance is None:
            self.start()
        utterance = self._utterance
        utterance.pending.append(np.asarray(pcm16k, dtype=np.int16))
        utterance.pending_samples += len(pcm16k)
        if utterance.pending_samples < BLOCK_SAMPLES:
            return None
        text = await self._decode(utterance, final=False)
        if not text or text == utterance.partial:
            return None
        utterance.partial = text
        return text

    async def finish(self) -> str:
        utterance, self._utterance = self._utterance, None
        if utterance is None or (utterance.recogniser is None and not utterance.pending):
            return ""  # no audio arrived: no decoder needed
        try:
            return await self._decode(utterance, final=True)
        finally:
            utterance.release_when_idle()

    def reset(self) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is not None:
            utterance.release_when_idle()

    @staticmethod
    async def _decode(utterance: _Utterance, *, final: bool) -> str:
        loop = asyncio.get_running_loop()
        utterance.busy = loop.run_in_executor(None, utterance.decode, utterance.take_pending(), final)
        try:
            # Shielded: if the caller is cancelled, the thread still runs, and busy must say so until it ends.
            return await asyncio.shield(utterance.busy)
        except RuntimeError as exc:
            raise ASRError(f"pocketsphinx failed: {exc}") from exc
