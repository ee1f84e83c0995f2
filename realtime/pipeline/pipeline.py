"""Wires the stages of one session together and cuts them all at once on an interrupt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from realtime.avatar.reader import AvatarBundle
from realtime.clock import SessionClock
from realtime.engines.tts.base import TTSEngine
from realtime.frames import MessageEnd, TextChunk
from realtime.text.splitter import split_text
from realtime.timeline import FrameRate, PlayoutTimeline

from .features import FeatureStage
from .player import Player, PlayoutListener
from .render import Renderer, RenderStage
from .speech import SpeechStage
from .stage import Generation, Stage
from .tasks import TaskOwner

RENDER_QUEUE_BATCHES = 4  # jobs made ahead at the current fps: a rate change reaches the air after these


@dataclass(frozen=True, kw_only=True)
class PlayoutSettings:
    """How far ahead each part may run. Small numbers keep latency and the cost of an interrupt low.

    No defaults: the session factory fills them from the PLAYOUT_* settings (``livehuman_site.runtime_settings``).
    """

    lead_frames: int  # a new utterance starts this many frames after now: time for the tracks to pick it up
    max_ahead_frames: int  # the player schedules at most this far ahead of the clock
    batch_size: int  # lip-sync frames per render call, at most
    max_queued_sentences: int = 256  # a say beyond this is refused rather than queued without bound


class LoadListener(Protocol):
    """Hears how the session's generator keeps up (the degradation governor, ``realtime.degrade``)."""

    def late(self, frames: int, fps: int) -> None: ...

    def rendered(self, seconds: float, frames: int) -> None: ...


class PipelineListener(PlayoutListener, Protocol):
    def audio_started(self, message_id: int) -> None:
        """TTS produced audio for this message (called for every piece; the first one counts)."""

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None:
        """TTS could not speak this sentence; it was skipped."""


class PipelineFull(Exception):
    """More text is queued than ``max_queued_sentences`` allows."""


class MessageStream:
    """A message whose text arrives in chunks (an LLM answer): each is queued as it comes, then the message's end.

    It keeps the generation it was opened in, so chunks added after an
    interrupt are stale and never reach the air.
    """

    def __init__(self, inbox: asyncio.Queue, generation: int, message_id: int) -> None:
        self._inbox = inbox
        self.generation = generation
        self.message_id = message_id

    async def add(self, text: str) -> None:
        """Queue one chunk for speech; waits while the speech queue is full (back-pressure on the LLM)."""
        await self._inbox.put(TextChunk(self.generation, self.message_id, text))

    async def end(self) -> None:
        await self._inbox.put(MessageEnd(self.generation, self.message_id))


class SpeechPipeline:
    """One session's stages, each running in a task of the session's ``TaskOwner``."""

    def __init__(
        self,
        *,
        owner: TaskOwner,
        clock: SessionClock,
        timeline: PlayoutTimeline,
        rate: FrameRate,
        avatar: AvatarBundle,
        tts: TTSEngine,
        render: Renderer,
        listener: PipelineListener,
        settings: PlayoutSettings,
        split: Callable[[str], list[str]] = split_text,
        load: LoadListener | None = None,
    ) -> None:
        self.owner = owner
        self.generation = Generation()
        self.split = split
        self.player = Player(
            self.generation,
            clock,
            timeline,
            listener,
            rate=rate,
            lead_frames=settings.lead_frames,
            max_ahead_frames=settings.max_ahead_frames,
            maxsize=settings.batch_size,
            on_late=load.late if load else None,
        )
        # Jobs are small (a mel window and 1/fps s of audio): a few batches queued let the next sentence's features
        # be computed while the renderer works through this one. Rendered frames (large) queue only at the player.
        self.render = RenderStage(
            self.generation,
            render,
            batch_size=settings.batch_size,
            maxsize=RENDER_QUEUE_BATCHES * settings.batch_size,
            on_rendered=load.rendered if load else None,
        )
        self.features = FeatureStage(self.generation, avatar, rate, maxsize=4, first_start=self.player.first_start)
        self.speech = SpeechStage(
            self.generation,
            tts,
            maxsize=settings.max_queued_sentences,
            on_audio=listener.audio_started,
            on_failure=listener.sentence_failed,
        )
        self.stages: list[Stage] = [self.speech, self.features, self.render, self.player]
        for upstream, downstream in zip(self.stages, self.stages[1:], strict=False):
            upstream.downstream = downstream
        self._tasks: dict[Stage, asyncio.Task] = {}

    def start(self) -> None:
        for stage in self.stages:
            self._tasks[stage] = self.owner.spawn(stage.run(), name=f"pipeline.{stage.name}")

    def say(self, text: str, message_id: int) -> int:
        """Queue ``text`` as one message, after whatever is being said; returns how many chunks it was cut into.

        All or nothing: when the chunks and the message's end do not all fit, nothing is queued."""
        generation = self.generation.value
        items = [TextChunk(generation, message_id, chunk) for chunk in self.split(text)]
        items.append(MessageEnd(generation, message_id))
        inbox = self.speech.inbox
        if inbox.maxsize - inbox.qsize() < len(items):
            raise PipelineFull(f"{inbox.qsize()} sentences are already waiting; interrupt or wait")
        for item in items:
            inbox.put_nowait(item)
        return len(items) - 1

    def open_message(self, message_id: int) -> MessageStream:
        """Start a message whose text will be added chunk by chunk, after whatever is being said."""
        return MessageStream(self.speech.inbox, self.generation.value, message_id)

    def silence(self) -> None:
        """Make everything queued stale and take it off the timeline now: the next audio packet fades to silence.

        No await: an interrupt calls this before anything it waits for (an LLM stream closing, the stages
        stopping), so none of that delays the silence; ``restart`` then stops and empties the stages."""
        self.generation.bump()
        self.player.clear()

    async def restart(
        self, *, avatar: AvatarBundle | None = None, tts: TTSEngine | None = None, render: Renderer | None = None
    ) -> None:
        """Interrupt: make everything queued stale, stop every stage mid-item, empty every queue and the timeline,
        and start again; while every stage is stopped, swap in another role's avatar, voice and renderer if given."""
        self.silence()
        await self.owner.cancel(*self._tasks.values())
        self._tasks.clear()
        for stage in self.stages:
            stage.reset()
        if avatar is not None:
            self.features.avatar = avatar
        if tts is not None:
            self.speech.tts = tts
        if render is not None:
            self.render.render = render
        self.start()
