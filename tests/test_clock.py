"""The session clock: one time line for both tracks and the player.

On looptime's fast-forwarded loop time only moves when every task waits, so
these tests read exact times instead of sleeping on the wall clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import pytest

from realtime.clock import SessionClock

pytestmark = pytest.mark.looptime


async def test_now_starts_at_zero_and_follows_its_time_source():
    clock = SessionClock()
    assert clock.now() == 0
    await asyncio.sleep(0.1)
    assert clock.now() == pytest.approx(0.1)


async def test_ticks_count_whole_slots_and_next_tick_is_never_in_the_past():
    clock = SessionClock()
    await asyncio.sleep(0.105)
    assert (clock.tick(25), clock.tick(50)) == (2, 5)
    assert clock.next_tick(25) == 3 and clock.next_tick(25) / 25 >= clock.now()
    await asyncio.sleep(0.015)  # exactly on a slot's start: that slot is current and still usable
    assert clock.tick(25) == clock.next_tick(25) == 3


async def test_sleep_until_wakes_at_the_clock_time_and_not_before():
    clock = SessionClock()
    await clock.sleep_until(0.12)
    assert clock.now() == pytest.approx(0.12)
    await clock.sleep_until(0.05)  # in the past: returns at once
    assert clock.now() == pytest.approx(0.12)


async def test_call_at_runs_the_callback_at_that_clock_time():
    clock = SessionClock()
    fired: list[float] = []
    clock.call_at(0.08, lambda: fired.append(clock.now()))
    await asyncio.sleep(0.15)
    assert fired == [pytest.approx(0.08)]


class ManualTime:
    """A time source that moves only when told to (``advance``), running what falls due."""

    def __init__(self) -> None:
        self.now = 100.0
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.Handle:
        heapq.heappush(self._due, (when, next(self._order), callback))
        return asyncio.get_running_loop().call_soon(lambda: None)  # only its cancel() is used

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._due and self._due[0][0] <= self.now:
            heapq.heappop(self._due)[2]()


async def test_the_clock_runs_on_any_time_source():
    source = ManualTime()
    clock = SessionClock(source)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until(0.5)
        woke.append(clock.now())

    task = asyncio.ensure_future(sleeper())
    await asyncio.sleep(0)
    source.advance(0.4)
    await asyncio.sleep(0)
    assert woke == [] and clock.tick(25) == 10
    source.advance(0.1)
    await task
    assert woke == [pytest.approx(0.5)]
