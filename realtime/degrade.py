"""Degradation under load: a session whose generator falls behind its clock steps down a ladder of cheaper
video, one level at a time — lower fps (e.g. 50 → 30 → 25 → 20), then half-size frames, then a lighter lip-sync
engine (Wav2Lip → the weights-free default) — and climbs back the same way when there is headroom (DESIGN.md §4:
degrade rather than let latency grow).

The ladder is a list of ``Level`` values, built per session from its role (``ladder_for``); the governor only
moves an index along it and the session makes its video what the level says. Two signals reach the governor:

- ``late(frames, fps)``: frames that missed their slot — the player had to
  leave a gap inside a sentence (the renderer was late), or the video track
  skipped slots (the encoder was late). Reports for frames made at another fps
  than the current one are ignored: after a step down, the frames still queued
  at the old rate are late through no fault of the new one.
- ``rendered(seconds, frames)``: how long this session waited for its lip-sync
  frames (a wait that began before the last change is ignored: it measured the
  level before). ``seconds / frames × fps`` is the share of real time the session's
  video costs at that fps — with cross-session batching it includes the other
  sessions' frames in the same forward passes, so it measures the load the
  session actually sees. Above 1 the generator cannot keep up.

Stepping down needs ``late_frames`` late frames (or a load above 1) within
``window_s``; stepping up needs ``recover_s`` without any late frame and a
predicted load that would stay under ``headroom`` at the level above. The load
at a higher fps is the cost per frame measured now times that fps; half size
costs the renderer the same. The heavier engine's load is the lighter one's now
times the ratio of their costs per frame as this session measured them, the
heavy one just before leaving it and the light one just after arriving (both
under the same load), so a worker whose load fell lets the session climb back
and one still overloaded does not. After every change the governor holds still
for ``hold_s`` so the change can show its effect, and a step down soon after a
step up doubles the recovery time, so a session at the edge does not flap.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

logger = logging.getLogger(__name__)


class Step(StrEnum):
    """What one level of the ladder changes from the level above it."""

    TOP = "top"  # the role's own video: no step
    FPS = "fps"
    RESOLUTION = "resolution"
    ENGINE = "engine"


@dataclass(frozen=True)
class Level:
    """How a session makes its video at one level of its ladder."""

    fps: int
    half_size: bool = False  # frames sent at half width and height; the page scales them back up
    lipsync_engine: str = ""  # another engine than the role's (the lighter one); "" for the role's own
    step: Step = Step.TOP


@dataclass(frozen=True, kw_only=True)
class DegradePolicy:
    """When to step down and up, and what the ladder holds. No defaults but one: the session factory fills it
    from the DEGRADE_* and FPS_LADDER settings, whose values live in ``conf.DEFAULTS`` only."""

    ladder: tuple[int, ...]
    enabled: bool
    late_frames: int
    window_s: float
    hold_s: float
    recover_s: float
    max_recover_s: float = 60.0  # the doubled recovery time never grows past this
    headroom: float
    half_size: bool  # a level with half-size frames below the lowest fps
    # (role's engine, lighter engine): a last level rendering with the lighter one, for roles using the first
    lighter_engines: tuple[tuple[str, str], ...]


def rungs_for(ceiling: int, ladder: Sequence[int]) -> tuple[int, ...]:
    """The fps a session may use, highest first: the ladder's rungs up to the role's own fps, which is the top."""
    return tuple(sorted({fps for fps in ladder if fps < ceiling} | {ceiling}, reverse=True))


def ladder_for(ceiling: int, lipsync_engine: str, policy: DegradePolicy) -> tuple[Level, ...]:
    """A role's levels, full quality first: each fps rung, then half size, then the lighter engine (if its
    engine has one)."""
    rungs = rungs_for(ceiling, policy.ladder)
    levels = [Level(rungs[0])] + [Level(fps, step=Step.FPS) for fps in rungs[1:]]
    lowest = rungs[-1]
    if policy.half_size:
        levels.append(Level(lowest, half_size=True, step=Step.RESOLUTION))
    lighter = dict(policy.lighter_engines).get(lipsync_engine)
    if lighter and lighter != lipsync_engine:
        levels.append(Level(lowest, half_size=policy.half_size, lipsync_engine=lighter, step=Step.ENGINE))
    return tuple(levels)


class DegradeGovernor:
    """Moves one session along its ladder. ``now`` is the session clock (seconds); ``on_change(old, new,
    reason)`` hears of every move, and the session applies the new level."""

    def __init__(
        self,
        ceiling: int,
        lipsync_engine: str,
        policy: DegradePolicy,
        *,
        now: Callable[[], float],
        on_change: Callable[[Level, Level, str], None],
    ) -> None:
        self.policy = policy
        self._now = now
        self._on_change = on_change
        self.reset(ceiling, lipsync_engine)

    def reset(self, ceiling: int, lipsync_engine: str) -> None:
        """Start over at the top of a (new) role's ladder, everything observed so far forgotten. Silent: the
        caller sets the role's own video up itself."""
        self.levels = ladder_for(ceiling, lipsync_engine, self.policy)
        self.index = 0
        self._late: deque[tuple[float, int]] = deque()
        self._renders: deque[tuple[float, float, int]] = deque()
        self._changed_at = self._now()
        self._last_late_at = self._changed_at
        self._stepped_up = False
        self._recover_s = self.policy.recover_s
        self._left_cost: dict[int, float] = {}  # seconds a frame, by level: measured last when leaving it
        self._arrival_cost: dict[int, float] = {}  # and first after arriving at it

    @property
    def level(self) -> Level:
        return self.levels[self.index]

    @property
    def degraded(self) -> bool:
        return self.index > 0

    def late(self, frames: int, fps: int) -> None:
        """``frames`` made at ``fps`` missed their slot."""
        if frames <= 0 or fps != self.level.fps:
            return
        now = self._now()
        self._late.append((now, frames))
        self._last_late_at = now
        self._decide(now)

    def rendered(self, seconds: float, frames: int) -> None:
        """This session waited ``seconds`` for ``frames`` lip-sync frames. A wait that began before the last
        change measured the level before it (the engine it used, say) and is ignored."""
        now = self._now()
        if frames <= 0 or now - seconds < self._changed_at:
            return
        self._renders.append((now, seconds, frames))
        if self.index not in self._arrival_cost and (cost := self._cost()) is not None:
            self._arrival_cost[self.index] = cost
        self._decide(now)

    def load(self, fps: int | None = None) -> float | None:
        """Share of real time the recent frames would cost at ``fps`` (the current one by default); None
        when too few frames were rendered lately to tell (the session is quiet)."""
        cost = self._cost()
        return None if cost is None else cost * (fps or self.level.fps)

    # --- policy ----------------------------------------------------------------------------------------------

    def _decide(self, now: float) -> None:
        if not self.policy.enabled or now - self._changed_at < self.policy.hold_s:
            return
        self._forget_before(now - self.policy.window_s)
        load = self.load()
        late = sum(count for _, count in self._late)
        if self.index + 1 < len(self.levels) and (late >= self.policy.late_frames or (load is not None and load > 1)):
            reason = f"{late} late frames in {self.policy.window_s:g} s" if late else f"load {load:.2f}"
            if self._stepped_up and now - self._changed_at < 2 * self._recover_s:
                self._recover_s = min(2 * self._recover_s, self.policy.max_recover_s)  # that climb was too early
            self._move(self.index + 1, now, reason, stepped_up=False)
        elif self.index > 0 and now - max(self._changed_at, self._last_late_at) >= self._recover_s:
            load_higher = self._predicted_load(self.index - 1)
            if load_higher is not None and load_higher <= self.policy.headroom:
                self._move(self.index - 1, now, f"headroom: load {load_higher:.2f} predicted", stepped_up=True)

    def _predicted_load(self, index: int) -> float | None:
        """The load level ``index`` (the one above) would have now; None when there is too little to tell."""
        higher = self.levels[index]
        load = self.load(higher.fps)
        if load is None or higher.lipsync_engine == self.level.lipsync_engine:
            return load
        heavy, light = self._left_cost.get(index), self._arrival_cost.get(self.index)
        if heavy is None or not light:
            return load  # never measured (it was left on late frames alone): a trial, undone if it fails
        return load * heavy / light

    def _cost(self) -> float | None:
        """Seconds this session waited per lip-sync frame lately; None when too few frames were rendered."""
        self._forget_before(self._now() - self.policy.window_s)
        frames = sum(count for _, _, count in self._renders)
        if frames < max(4, self.level.fps // 4):
            return None
        return sum(spent for _, spent, _ in self._renders) / frames

    def _move(self, index: int, now: float, reason: str, *, stepped_up: bool) -> None:
        old = self.level
        if (cost := self._cost()) is not None:
            self._left_cost[self.index] = cost
        self._arrival_cost.pop(index, None)
        self.index = index
        self._changed_at = now
        self._stepped_up = stepped_up
        self._late.clear()
        self._renders.clear()  # costs measured at the old level say little about the new one's lateness
        if index == 0:
            self._recover_s = self.policy.recover_s
        self._on_change(old, self.level, reason)

    def _forget_before(self, cutoff: float) -> None:
        while self._late and self._late[0][0] < cutoff:
            self._late.popleft()
        while self._renders and self._renders[0][0] < cutoff:
            self._renders.popleft()
