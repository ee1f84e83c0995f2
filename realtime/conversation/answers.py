"""Answering a turn: the role's LLM streams text, the splitter cuts it into chunks, each chunk is spoken at once.

The first chunk goes to TTS as soon as the splitter releases it (a short
clause, or a few words of text with no punctuation at all, as ASR output
echoed back), so the avatar starts talking while the LLM is still writing. One
answer streams at a time: two answers' chunks must not interleave in the
speech queue. An interrupt cancels the streaming task, which closes the LLM
request (``aclosing``). When the LLM fails, the avatar apologises in the
role's language and the page hears why; the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import Protocol

from realtime.engines.llm.base import LLMEngine, LLMError
from realtime.pipeline import TaskOwner
from realtime.text.splitter import SentenceSplitter, spoken_length, spoken_prefix

from .apology import apology
from .history import History
from .spoken import word_prefix

logger = logging.getLogger(__name__)

# TTS engines synthesise a chunk whole before its first audio, so the first chunk's length is the answer's start-up
# cost (Piper here: about 5 ms a character, more under load): a first sentence or clause longer than this (spoken
# length: a Chinese character counts as three letters), or text with no punctuation at all (ASR output echoed
# back), is cut at a word boundary.
FIRST_CHUNK_MAX_CHARS = 32


class AnswerChunks:
    """The sentence splitter's chunks of a streamed answer, with a short first chunk.

    The first chunk is the splitter's first (a sentence, or an early clause)
    when it comes within ``FIRST_CHUNK_MAX_CHARS``; else the whole words within
    that length. The rest goes to a fresh splitter: chunks joined are the text.
    """

    def __init__(self) -> None:
        self._splitter = SentenceSplitter()
        self._head: str | None = ""  # the answer so far while its first chunk is not out; None after

    def feed(self, text: str) -> list[str]:
        chunks = self._splitter.feed(text)
        if self._head is None:
            return chunks
        self._head += text
        if chunks:
            self._head = None
            return chunks
        if spoken_length(self._head) <= FIRST_CHUNK_MAX_CHARS:
            return []
        first = word_prefix(self._head, len(spoken_prefix(self._head, FIRST_CHUNK_MAX_CHARS)))
        if not first.strip():
            return []  # one long word so far: the splitter decides
        first = self._head[: len(self._head) - len(self._head[len(first) :].lstrip())]  # with the spaces after it
        rest, self._head = self._head[len(first) :], None
        self._splitter = SentenceSplitter()
        return [first, *self._splitter.feed(rest)]

    def flush(self) -> list[str]:
        return self._splitter.flush()


class AnswerWriter(Protocol):
    """One assistant message whose text is queued for speech as it arrives (the session's side of an answer)."""

    message_id: int

    @property
    def text(self) -> str:
        """Everything queued so far."""

    def first_token(self) -> None:
        """The LLM's first text arrived (noted once, for the message's timings)."""

    async def add(self, text: str) -> None:
        """Queue a chunk for speech; waits while the speech queue is full."""

    async def end(self) -> None:
        """No more text: the message ends after what is queued."""


class Answerer:
    """Turns each user turn into a spoken answer with the session's LLM engine."""

    def __init__(
        self,
        llm: LLMEngine,
        history: History,
        owner: TaskOwner,
        *,
        language: str,
        on_error: Callable[[str, str], None],
    ) -> None:
        self.llm = llm
        self.history = history
        self.owner = owner
        self.language = language
        self._on_error = on_error
        self._one_at_a_time = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def answer(self, writer: AnswerWriter) -> None:
        """Answer the conversation as it stands (its newest user turn) into ``writer``, in a task of its own."""
        task = self.owner.spawn(self._answer(writer), name="conversation.answer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        """Stop every answer still streaming (barge-in, interrupt); the session cuts what was queued."""
        await self.owner.cancel(*self._tasks)

    async def _answer(self, writer: AnswerWriter) -> None:
        async with self._one_at_a_time:
            splitter = AnswerChunks()
            try:
                async with aclosing(self.llm.stream(self.history.messages())) as deltas:
                    async for delta in deltas:
                        writer.first_token()
                        for chunk in splitter.feed(delta):
                            await writer.add(chunk)
                for chunk in splitter.flush():
                    await writer.add(chunk)
            except LLMError as exc:
                # Text after the last whole chunk is a fragment ("The capital of"): drop it, apologise instead.
                logger.warning("LLM failed: %s", exc)
                await self._apologise(writer, f"llm_{exc.code}", exc.message)
            except Exception as exc:  # an engine bug must not end the conversation either
                logger.exception("LLM engine crashed")
                await self._apologise(writer, "llm_error", str(exc) or type(exc).__name__)
            self.history.set_assistant(writer.message_id, writer.text.strip())
            await writer.end()

    async def _apologise(self, writer: AnswerWriter, code: str, reason: str) -> None:
        self._on_error(code, reason)
        separator = " " if writer.text and not writer.text[-1].isspace() else ""
        await writer.add(separator + apology(self.language))
