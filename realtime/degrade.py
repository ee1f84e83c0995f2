"""Degradation under load: a session whose generator falls behind its clock lowers its fps a rung at a time
(e.g. 50 → 30 → 25 → 20) and climbs back when there is headroom (DESIGN.md §4: degrade rather than let
latency grow).

Two signals reach the governor:

- ``late(frames, fps)``: frames that missed their slot — the player had to
  leave a gap inside a sentence (the renderer was late), or the video track
  skipped slots (the encoder was late). Reports for frames made at another fps
  than the current one are ignored: after a step down, the frames still queued
  at the old rate are late through no fault of the new one.
- ``rendered(seconds, frames)``: how long this session waited for its lip-sync
  frames. ``seconds / frames × fps`` is the share of real time the session's
  video costs at that fps — with cross-session batching it includes the other
  sessions' frames in the same forward passes, so it measures the load the
  session actually sees. Above 1 the generator cannot keep up.

Stepping down needs ``late_frames`` late frames (or a load above 1) within
``window_s``; stepping up needs ``recover_s`` without any late frame and a
measured load that would stay under ``headroom`` at the higher rung. After
every change the governor holds still for ``hold_s`` so the change can show
its effect; a step down soon after a step up doubles the recovery time, so a
session at the edge does not flap.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .timeline import FrameRate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DegradePolicy:
    """When to step down and up (the session factory fills it from the DEGRADE_* and FPS_LADDER settings)."""

    ladder: tuple[int, ...] = (50, 30, 25, 20)
    enabled: bool = True
    late_frames: int = 3
    window_s: float = 2.0
    hold_s: float = 2.0
    recover_s: float = 5.0
    max_recover_s: float = 60.0
    headroom: float = 0.7


def rungs_for(ceiling: int, ladder: Sequence[int]) -> tuple[int, ...]:
    """The fps a session may use, highest first: the ladder's rungs up to the role's own fps, which is the top."""
    return tuple(sorted({fps for fps in ladder if fps < ceiling} | {ceiling}, reverse=True))


class FpsGovernor:
    """Moves one session's ``FrameRate`` along its rungs. ``now`` is the session clock (seconds)."""

    def __init__(
        self,
        rate: FrameRate,
        policy: DegradePolicy,
        *,
        now: Callable[[], float],
        on_change: Callable[[int, int, str], None],
    ) -> None:
        self.rate = rate
        self.policy = policy
        self._now = now
        self._on_change = on_change
        self.reset(rate.fps)

    def reset(self, ceiling: int) -> None:
        """Start over at ``ceiling`` (a new role): its own fps, everything observed so far forgotten."""
        self.rungs = rungs_for(ceiling, self.policy.ladder)
        self.rate.fps = ceiling
        self._late: deque[tuple[float, int]] = deque()
        self._renders: deque[tuple[float, float, int]] = deque()
        self._changed_at = self._now()
        self._last_late_at = self._changed_at
        self._stepped_up = False
        self._recover_s = self.policy.recover_s

    @property
    def degraded(self) -> bool:
        return self.rate.fps < self.rungs[0]

    def late(self, frames: int, fps: int) -> None:
        """``frames`` made at ``fps`` missed their slot."""
        if frames <= 0 or fps != self.rate.fps:
            return
        now = self._now()
        self._late.append((now, frames))
        self._last_late_at = now
        self._decide(now)

    def rendered(self, seconds: float, frames: int) -> None:
        """This session waited ``seconds`` for ``frames`` lip-sync frames."""
        if frames <= 0:
            return
        now = self._now()
        self._renders.append((now, seconds, frames))
        self._decide(now)

    def load(self, fps: int | None = None) -> float | None:
        """Share of real time the recent frames would cost at ``fps`` (the current one by default); None
        when too few frames were rendered lately to tell (the session is quiet)."""
        self._forget_before(self._now() - self.policy.window_s)
        frames = sum(count for _, _, count in self._renders)
        if frames < max(4, self.rate.fps // 4):
            return None
        seconds = sum(spent for _, spent, _ in self._renders)
        return seconds / frames * (fps or self.rate.fps)

    # --- policy ----------------------------------------------------------------------------------------------

    def _decide(self, now: float) -> None:
        if not self.policy.enabled or now - self._changed_at < self.policy.hold_s:
            return
        self._forget_before(now - self.policy.window_s)
        index = self.rungs.index(self.rate.fps)
        load = self.load()
        late = sum(count for _, count in self._late)
        if index + 1 < len(self.rungs) and (late >= self.policy.late_frames or (load is not None and load > 1.0)):
            reason = f"{late} late frames in {self.policy.window_s:g} s" if late else f"load {load:.2f}"
            if self._stepped_up and now - self._changed_at < 2 * self._recover_s:
                self._recover_s = min(2 * self._recover_s, self.policy.max_recover_s)  # that climb was too early
            self._move(index + 1, now, reason, stepped_up=False)
        elif index > 0 and now - max(self._changed_at, self._last_late_at) >= self._recover_s:
            higher = self.rungs[index - 1]
            load_higher = self.load(higher)
            if load_higher is not None and load_higher <= self.policy.headroom:
                self._move(index - 1, now, f"headroom: load {load_higher:.2f} at {higher} fps", stepped_up=True)

    def _move(self, index: int, now: float, reason: str, *, stepped_up: bool) -> None:
        old, new = self.rate.fps, self.rungs[index]
        self.rate.fps = new
        self._changed_at = now
        self._stepped_up = stepped_up
        self._late.clear()
        self._renders.clear()  # costs measured at the old rate say little about the new one's lateness
        if index == 0:
            self._recover_s = self.policy.recover_s
        self._on_change(old, new, reason)

    def _forget_before(self, cutoff: float) -> None:
        while self._late and self._late[0][0] < cutoff:
            self._late.popleft()
        while self._renders and self._renders[0][0] < cutoff:
            self._renders.popleft()
