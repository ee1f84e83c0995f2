"""Cross-session batching for one lip-sync model: many sessions' frame requests, one forward pass (DESIGN.md §5).

Each session (an *owner*) has its own bounded FIFO queue. One dispatcher task
per model forms a batch by taking requests round-robin across the owners that
have any queued, one at a time, starting after the owner that went first last
time: no owner can starve another, and a session that starts speaking gets its
first frame into the very next batch. The batch runs (in the pool's render
thread), and each request's future gets its own frame, so every session sees
its results in the order it asked.

Waiting for a batch to fill costs latency, so it happens only while it can
help: the dispatcher waits (at most ``wait_s`` after the oldest queued
request, and only until ``batch_size`` are queued) when some recently active
owner has nothing queued yet — the session whose frames are about to arrive.
A lone session is never kept waiting. While a batch runs, requests simply
accumulate for the next one.

A batch that raises fails the requests in it and nothing else; a cancelled
submission (an interrupt) takes its still-queued requests out of the queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

ACTIVE_S = 1.0  # an owner that submitted this recently is expected to submit again soon (a speaking session)


@dataclass(eq=False)
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]
    queued_at: float


@dataclass
class BatchStats:
    """Counters for benchmarks and metrics."""

    batches: int = 0
    items: int = 0
    failed_batches: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class BatchingExecutor(Generic[Item, Result]):
    """Gathers items from many owners into batches for ``run`` (one batch in flight at a time).

    ``run`` takes a list of items and returns one result per item, in order;
    it must not block the event loop (the pool passes a coroutine that runs the
    engine in its render thread).
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        batch_size: int,
        wait_s: float,
        max_queued: int,
        name: str = "batch",
    ) -> None:
        if batch_size < 1 or max_queued < 1:
            raise ValueError("batch_size and max_queued must be at least 1")
        self._run = run
        self.batch_size = batch_size
        self.wait_s = max(0.0, wait_s)
        self.max_queued = max_queued
        self.name = name
        self.stats = BatchStats()
        self._queues: dict[Hashable, deque[_Pending[Item, Result]]] = {}
        self._last_submit: dict[Hashable, float] = {}
        self._turn: list[Hashable] = []  # owners in round-robin order; the first goes first in the next batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None
        self._room: asyncio.Condition | None = None

    async def submit(self, owner: Hashable, items: Sequence[Item]) -> list[Result]:
        """Queue ``items`` for ``owner`` and return their results in order.

        Waits while ``owner`` already has ``max_queued`` items queued
        (back-pressure). Raises what the batch that held an item raised.
        Cancelling the call withdraws whatever of it is still queued.
        """
        if not items:
            return []
        self._ensure_running()
        assert self._room is not None and self._arrived is not None and self._loop is not None
        futures: list[asyncio.Future[Result]] = []
        try:
            for item in items:
                await self._wait_for_room(owner)
                queue = self._queues.setdefault(owner, deque())
                if owner not in self._turn:
                    self._turn.append(owner)
                now = self._loop.time()
                future = self._loop.create_future()
                queue.append(_Pending(item, future, now))
                futures.append(future)
                self._last_submit[owner] = now
                self._arrived.set()
            return list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:
                future.cancel()  # the dispatcher skips cancelled requests; a running batch's result is dropped
            raise

    def forget(self, owner: Hashable) -> None:
        """Drop ``owner`` (its session closed): its queued requests are cancelled, its turn is removed."""
        for pending in self._queues.pop(owner, ()):
            pending.future.cancel()
        self._last_submit.pop(owner, None)
        if owner in self._turn:
            self._turn.remove(owner)

    def queued(self, owner: Hashable | None = None) -> int:
        """Requests waiting for a batch: ``owner``'s, or everyone's."""
        if owner is not None:
            return sum(not p.future.done() for p in self._queues.get(owner, ()))
        return sum(self.queued(o) for o in self._queues)

    async def aclose(self) -> None:
        """Stop the dispatcher and cancel everything queued."""
        for owner in list(self._queues):
            self.forget(owner)
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)

    # --- dispatcher ------------------------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        """Start the dispatcher on this event loop (again, if an earlier loop has gone: tests run one per test)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        if self._loop is not loop:
            self._queues.clear()  # futures of another loop can never be awaited here
            self._last_submit.clear()
            self._turn.clear()
        self._loop = loop
        self._arrived = asyncio.Event()
        self._room = asyncio.Condition()
        # Started from whichever session submits first, but it serves all: it must not carry that session's
        # context (the session id bound for its log lines).
        self._task = loop.create_task(self._dispatch(), name=f"batching.{self.name}", context=contextvars.Context())

    async def _dispatch(self) -> None:
        assert self._arrived is not None and self._room is not None
        while True:
            self._drop_withdrawn()
            if not self._pending_count():
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._gather_more()
            await self._run_next_batch()

    async def _run_next_batch(self) -> None:
        """Take a batch and run it. Its own frame: nothing of the batch (requests, avatars, frames) is held while
        the dispatcher waits for the next one, however long that is."""
        assert self._room is not None
        batch = self._take_round_robin()
        async with self._room:
            self._room.notify_all()
        if batch:
            await self._run_batch(batch)

    async def _wait_for_room(self, owner: Hashable) -> None:
        queue = self._queues.get(owner)
        if queue is None or len(queue) < self.max_queued:
            return
        assert self._room is not None
        async with self._room:
            await self._room.wait_for(lambda: len(self._queues.get(owner, ())) < self.max_queued)

    async def _gather_more(self) -> None:
        """Wait for an expected session's requests, up to ``wait_s`` after the oldest queued one."""
        assert self._loop is not None and self._arrived is not None
        deadline = self._oldest_queued() + self.wait_s
        while self._pending_count() < self.batch_size and self._someone_expected():
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return
            self._drop_withdrawn()

    def _take_round_robin(self) -> list[_Pending[Item, Result]]:
        batch: list[_Pending[Item, Result]] = []
        order = list(self._turn)
        first_served: Hashable | None = None
        for owner in itertools.cycle(order):
            if len(batch) >= self.batch_size or not any(self._queues.get(o) for o in order):
                break
            queue = self._queues.get(owner)
            if queue:
                batch.append(queue.popleft())
                if first_served is None:
                    first_served = owner
        if first_served is not None:  # the next batch starts with the owner after this one's first
            self._turn.remove(first_served)
            self._turn.append(first_served)
        return batch

    async def _run_batch(self, batch: list[_Pending[Item, Result]]) -> None:
        try:
            results = await self._run([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(batch)} items gave {len(results)} results")
        except asyncio.CancelledError:
            for pending in batch:
                pending.future.cancel()
            raise
        except Exception as exc:
            self.stats.failed_batches += 1
            logger.warning("%s: a batch of %d failed: %s", self.name, len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.items += len(batch)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    def _drop_withdrawn(self) -> None:
        """Take cancelled requests (interrupted sessions) out of the queues, so they never reach the model."""
        for queue in self._queues.values():
            if any(p.future.done() for p in queue):
                kept = [p for p in queue if not p.future.done()]
                queue.clear()
                queue.extend(kept)

    def _pending_count(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _oldest_queued(self) -> float:
        assert self._loop is not None
        return min((queue[0].queued_at for queue in self._queues.values() if queue), default=self._loop.time())

    def _someone_expected(self) -> bool:
        """Is a recently active owner still to send its requests? (Worth waiting for: it will join this batch.)"""
        assert self._loop is not None
        now = self._loop.time()
        return any(not self._queues.get(owner) and now - at < ACTIVE_S for owner, at in self._last_submit.items())
