"""The session clock: one time line for both tracks and the player."""

from __future__ import annotations

import asyncio

import pytest

from realtime.clock import SessionClock


async def test_now_starts_at_zero_and_follows_the_loop_clock():
    clock = SessionClock()
    assert 0 <= clock.now() < 0.01
    await asyncio.sleep(0.1)
    assert 0.09 <= clock.now() < 0.2


async def test_ticks_count_whole_slots_and_next_tick_is_never_in_the_past():
    clock = SessionClock()
    await asyncio.sleep(0.105)
    now = clock.now()
    assert clock.tick(25) == int(now * 25)
    assert clock.tick(50) == int(now * 50)
    assert clock.next_tick(25) / 25 >= now
    assert clock.next_tick(25) - clock.tick(25) in (0, 1)


async def test_sleep_until_wakes_at_the_clock_time_and_not_before():
    clock = SessionClock()
    await clock.sleep_until(0.12)
    assert clock.now() == pytest.approx(0.12, abs=0.03)
    assert clock.now() >= 0.12
    before = clock.now()
    await clock.sleep_until(0.05)  # in the past: returns at once
    assert clock.now() - before < 0.01


async def test_call_at_runs_the_callback_at_that_clock_time():
    clock = SessionClock()
    fired: list[float] = []
    clock.call_at(0.08, lambda: fired.append(clock.now()))
    await asyncio.sleep(0.15)
    assert len(fired) == 1
    assert fired[0] == pytest.approx(0.08, abs=0.03)
