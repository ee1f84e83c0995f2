"""Waiting for a condition instead of sleeping a fixed time: a test's outcome must not depend on how fast the
machine is, only on what happened (issue 11, point 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], *, timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Return as soon as ``condition()`` is true; fail with ``what`` if it is still false after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        await asyncio.sleep(0.005)
