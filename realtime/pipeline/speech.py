"""TTS stage: sentences in, 16 kHz speech out, one sentence after another as the engine streams it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing

import numpy as np

from realtime.audio import to_16k
from realtime.engines.tts.base import TTSEngine, TTSError
from realtime.frames import AudioChunk, MessageEnd, PipelineItem, TextChunk

from .stage import Generation, Stage

logger = logging.getLogger(__name__)

EMPTY = np.zeros(0, np.int16)


class SpeechStage(Stage):
    """Synthesises each ``TextChunk`` with the session's voice; an interrupt cancels the synthesis in flight.

    ``on_audio(message_id)`` is called with every piece of audio (the session
    records the first as the message's time to first audio); ``on_failure`` with
    a sentence the engine could not speak, which is skipped so the answer goes on.
    """

    name = "speech"

    def __init__(
        self,
        generation: Generation,
        tts: TTSEngine,
        *,
        maxsize: int,
        on_audio: Callable[[int], None],
        on_failure: Callable[[int, str, Exception], None],
    ) -> None:
        super().__init__(generation, maxsize)
        self.tts = tts
        self._on_audio = on_audio
        self._on_failure = on_failure

    async def process(self, item: PipelineItem) -> None:
        if isinstance(item, MessageEnd):
            await self.emit(item)
            return
        assert isinstance(item, TextChunk)
        loop = asyncio.get_running_loop()
        try:
            async with aclosing(self.tts.synthesize(item.text)) as pieces:
                async for pcm in pieces:
                    # Resampling a whole sentence is numpy work: keep it off the event loop.
                    samples = await loop.run_in_executor(None, to_16k, pcm.samples, pcm.sample_rate)
                    self._on_audio(item.message_id)
                    await self.emit(AudioChunk(item.generation, item.message_id, item.text, samples))
        except TTSError as exc:
            logger.warning("TTS failed for %r: %s", item.text, exc)
            self._on_failure(item.message_id, item.text, exc)
        await self.emit(AudioChunk(item.generation, item.message_id, item.text, EMPTY, end_of_sentence=True))
