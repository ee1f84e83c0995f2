"""The echo engine: the role repeats what the user said. Needs no server; the default and the benchmark baseline."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from realtime.engines.llm.base import LLMEngine

# A word with the whitespace after it, or a single CJK character: the size of a streamed token.
_PIECE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+\s*|\s+")


class EchoLLM(LLMEngine):
    """Streams the user's last message back in word-sized pieces, like a real LLM's deltas."""

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        user_texts = [message["content"] for message in messages if message["role"] == "user"]
        if not user_texts:
            return
        for piece in _PIECE.findall(user_texts[-1]):
            # Yield to the loop between pieces, as a network stream would, so consumers interleave.
            await asyncio.sleep(0)
            yield piece
