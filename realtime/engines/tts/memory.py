"""Speech synthesised once per process and voice: the same words for another session are replayed, not redone.

Every session of a role starts by speaking the role's greeting, and a REST
``say`` often sends one announcement to many sessions: with Piper that is
about 86 ms of CPU per second of speech each time, and the first audio waits
for it. ``RememberingTTS`` wraps the engine the pool shares between the
sessions of a voice, streams a new text's chunks as the engine yields them (the
first audio is not delayed), and keeps the finished result, up to a byte
budget (least recently used first out). A synthesis that was abandoned (an
interrupt) or failed is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import AsyncIterator

from .base import PCM, TTSEngine

DEFAULT_BUDGET_BYTES = 8 * 2**20  # per voice: about 3 minutes of 22 kHz speech


class RememberingTTS(TTSEngine):
    """``engine``, with the speech of recent texts kept (at most ``budget_bytes`` of samples)."""

    def __init__(self, engine: TTSEngine, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        super().__init__(engine.voice)
        self.engine = engine
        self.budget_bytes = budget_bytes
        self._kept: OrderedDict[str, tuple[PCM, ...]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # sessions of one voice may run on different event loops (tests, preloading)

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        key = text.strip()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if kept is not None:
            for chunk in kept:
                yield chunk
            return
        chunks: list[PCM] = []
        async for chunk in self.engine.synthesize(text):
            chunks.append(chunk)
            yield chunk
        self._keep(key, tuple(chunks))  # reached only when the engine finished and every chunk was taken

    async def aclose(self) -> None:
        await self.engine.aclose()

    def _keep(self, key: str, chunks: tuple[PCM, ...]) -> None:
        size = sum(chunk.samples.nbytes for chunk in chunks)
        if not key or size > self.budget_bytes:
            return
        with self._lock:
            if key in self._kept:
                return
            self._kept[key] = chunks
            self._bytes += size
            while self._bytes > self.budget_bytes:
                _, dropped = self._kept.popitem(last=False)
                self._bytes -= sum(chunk.samples.nbytes for chunk in dropped)
