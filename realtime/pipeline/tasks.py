"""The per-session owner of asyncio tasks: it creates them, cancels them, and awaits what it cancelled.

Like ``asyncio.TaskGroup`` in that nothing it started outlives it, but a
pipeline needs two things a TaskGroup lacks: restarting one stage's task on an
interrupt, and reporting a crashed task instead of tearing the session down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TaskOwner:
    """Holds every task of one session; ``aclose`` cancels and awaits them all."""

    def __init__(self, on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._on_error = on_error
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        if self._closed:
            coro.close()
            raise RuntimeError("this session's tasks are closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def cancel(self, *tasks: asyncio.Task) -> None:
        """Cancel ``tasks`` and wait until they have finished unwinding (their ``finally`` blocks have run)."""
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def aclose(self) -> None:
        """Cancel and await every task, except the caller's own (it may be one of ours: it finishes by itself)."""
        self._closed = True
        current = asyncio.current_task()
        await self.cancel(*(task for task in self._tasks if task is not current))

    def __len__(self) -> int:
        return len(self._tasks)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("task %s failed", task.get_name(), exc_info=error)
            if self._on_error is not None:
                self._on_error(task.get_name(), error)
