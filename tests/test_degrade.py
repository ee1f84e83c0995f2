"""Degradation under load: the fps steps down a rung at a time when a session falls behind its clock, and
climbs back when there is headroom; in a live session the frames follow the new rate and the change is logged
and sent to the page."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time

import numpy as np

from realtime.audio import SAMPLE_RATE, melspectrogram, to_48k
from realtime.degrade import DegradePolicy, FpsGovernor, rungs_for
from realtime.engines.tts.base import VoiceSettings
from realtime.frames import AudioChunk, FrameJob
from realtime.pipeline.features import FeatureStage
from realtime.pipeline.stage import Generation, Stage
from realtime.session import LiveSession
from realtime.timeline import FrameRate
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool, session_config
from testkit.voice import RecordingEvents
from tests.fixtures.fake_engines import BlockTTS, LevelLipSync

POLICY = DegradePolicy(late_frames=3, window_s=2.0, hold_s=2.0, recover_s=5.0, headroom=0.7)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def governor(fps: int = 50, policy: DegradePolicy = POLICY) -> tuple[FpsGovernor, Clock, list[tuple[int, int]]]:
    clock, changes = Clock(), []
    rate = FrameRate(fps)
    return (
        FpsGovernor(rate, policy, now=clock, on_change=lambda old, new, why: changes.append((old, new))),
        clock,
        changes,
    )


def run(gov: FpsGovernor, clock: Clock, seconds: float, *, frame_cost_s: float, late_every_s: float | None = None):
    """Simulate ``seconds`` of speech: a render report every 0.1 s (frames at the current fps), a late frame
    every ``late_every_s``."""
    next_late = late_every_s
    for _ in range(round(seconds / 0.1)):
        clock.now += 0.1
        frames = max(1, round(gov.rate.fps * 0.1))
        gov.rendered(frame_cost_s * frames, frames)
        if next_late is not None and clock.now >= next_late:
            gov.late(1, gov.rate.fps)
            next_late += late_every_s


def test_rungs_stop_at_the_roles_own_fps():
    assert rungs_for(50, (50, 30, 25, 20)) == (50, 30, 25, 20)
    assert rungs_for(25, (50, 30, 25, 20)) == (25, 20)
    assert rungs_for(20, (50, 30, 25, 20)) == (20,)


def test_steps_down_one_rung_at_a_time_while_late_and_never_below_the_last():
    gov, clock, changes = governor()
    run(gov, clock, 30, frame_cost_s=0.01, late_every_s=0.3)  # load fine, but frames keep missing their slots
    assert changes == [(50, 30), (30, 25), (25, 20)]
    assert gov.rate.fps == 20 and gov.degraded


def test_overload_steps_down_before_any_frame_is_late():
    gov, clock, changes = governor()
    run(gov, clock, 3, frame_cost_s=0.03)  # 30 ms a frame is 1.5 × real time at 50 fps
    assert changes == [(50, 30)]


def test_holds_still_after_a_change_and_needs_enough_late_frames():
    gov, clock, changes = governor()
    clock.now = 3.0
    gov.late(2, 50)
    assert changes == []  # two late frames are below the threshold of three
    gov.late(1, 50)
    assert changes == [(50, 30)]
    gov.late(50, 30)  # at once: the change is given hold_s to show its effect
    assert changes == [(50, 30)]


def test_late_frames_made_at_the_old_rate_do_not_count():
    gov, clock, changes = governor()
    clock.now = 3.0
    gov.late(3, 50)
    clock.now = 6.0
    gov.late(10, 50)  # frames still queued from before the step down
    assert changes == [(50, 30)]


def test_recovers_a_rung_at_a_time_with_headroom_only():
    gov, clock, changes = governor()
    run(gov, clock, 12, frame_cost_s=0.01, late_every_s=0.3)
    assert gov.rate.fps == 20
    changes.clear()
    run(gov, clock, 8, frame_cost_s=0.03)  # 30 ms a frame: 0.75 of real time at 25 fps, above the 0.7 headroom
    assert changes == []
    run(gov, clock, 30, frame_cost_s=0.005)  # cheap again
    assert changes == [(20, 25), (25, 30), (30, 50)]
    assert not gov.degraded


def test_a_quiet_session_does_not_climb_without_evidence():
    gov, clock, changes = governor()
    run(gov, clock, 12, frame_cost_s=0.01, late_every_s=0.3)
    changes.clear()
    for _ in range(100):  # a minute of silence: nothing rendered, nothing late
        clock.now += 0.6
        gov.late(0, gov.rate.fps)
    assert changes == []


def test_a_step_up_that_was_too_early_doubles_the_wait_before_the_next():
    gov, clock, changes = governor(25)
    run(gov, clock, 3, frame_cost_s=0.01, late_every_s=0.3)
    assert changes == [(25, 20)]
    run(gov, clock, 6, frame_cost_s=0.005)
    assert changes[-1] == (20, 25)
    run(gov, clock, 3, frame_cost_s=0.01, late_every_s=0.3)  # too early: late again
    assert changes[-1] == (25, 20)
    stepped_down_at = clock.now
    run(gov, clock, 30, frame_cost_s=0.005)
    assert changes[-1] == (20, 25)
    climbs = [c for c in changes if c == (20, 25)]
    assert len(climbs) == 2
    assert gov._changed_at - stepped_down_at >= 2 * POLICY.recover_s - 0.2


def test_disabled_never_changes():
    gov, clock, changes = governor(policy=DegradePolicy(enabled=False))
    run(gov, clock, 10, frame_cost_s=0.1, late_every_s=0.1)
    assert changes == [] and gov.rate.fps == 50


# --- the features stage follows the rate inside a sentence ----------------------------------------------------


class SwitchingSink(Stage):
    """Collects jobs; after ``after`` of them it lowers the rate, as the governor would mid-sentence."""

    name = "sink"

    def __init__(self, generation: Generation, rate: FrameRate, after: int, to: int) -> None:
        super().__init__(generation, maxsize=0)
        self.rate, self.after, self.to = rate, after, to
        self.jobs: list[FrameJob] = []

    async def process(self, item) -> None:
        raise AssertionError("fed by put, not run")

    async def take(self) -> None:
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if isinstance(item, FrameJob):
                self.jobs.append(item)
                if len(self.jobs) == self.after:
                    self.rate.fps = self.to


async def test_a_rate_change_applies_from_the_next_frame_inside_a_sentence(astronaut_bundle):
    rate, generation = FrameRate(25), Generation()
    stage = FeatureStage(generation, astronaut_bundle, rate, maxsize=0, first_start=lambda: 0)
    sink = SwitchingSink(generation, rate, after=10, to=20)
    stage.downstream = sink
    original_emit = stage.emit

    async def emit(item):  # deliver at once, so the sink's rate change lands between two frames
        await original_emit(item)
        await sink.take()

    stage.emit = emit
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(int(1.5 * SAMPLE_RATE)) * 3000).astype(np.int16)
    await stage.process(AudioChunk(0, 1, "one sentence", audio, end_of_sentence=True))

    lengths = [len(job.audio) for job in sink.jobs]
    assert lengths[:10] == [1920] * 10 and set(lengths[10:]) == {2400}
    # the sentence's audio is cut into consecutive frames: no gap, no overlap, nothing lost
    joined = np.concatenate([job.audio for job in sink.jobs])
    expected = to_48k(audio)
    assert len(joined) >= len(expected) and np.abs(joined[: len(expected)].astype(int) - expected).max() <= 1
    # each frame's mel window starts at its own time in the sentence
    mel = melspectrogram(np.pad(audio, (0, 1000)))
    starts = np.cumsum([0, *lengths[:-1]])
    for job, at in zip(sink.jobs, starts, strict=True):
        column = int(80 * at / 48_000)
        assert np.allclose(job.request.mel[:, :4], mel[:, column : column + 4], atol=1e-3)


# --- a live session ------------------------------------------------------------------------------------------


class SlowLipSync(LevelLipSync):
    """LevelLipSync that takes ``cost_s`` per frame (in the render thread), changeable while it runs."""

    cost_s = 0.0

    def render_batch(self, requests):
        time.sleep(self.cost_s * len(requests))
        return super().render_batch(requests)


async def test_a_live_session_degrades_under_a_slow_renderer_and_recovers(tmp_path, caplog):
    engine = SlowLipSync()
    pool = model_pool(
        device="cpu",
        resolve=lambda kind, name: (lambda device: engine) if kind == "lipsync" else (lambda v: BlockTTS()),
    )
    config = session_config(
        session_id="degrading",
        role_id=1,
        role_name="fast talker",
        fps=50,
        avatar_path=write_astronaut_bundle(tmp_path / "avatar", frame_count=1),
        lipsync_engine="slow",
        tts_engine="block",
        voice=VoiceSettings(),
        degrade=DegradePolicy(late_frames=2, window_s=0.5, hold_s=0.3, recover_s=0.6, headroom=0.7),
    )
    live = await LiveSession.open(config, pool, RecordingEvents())
    placed: list[tuple[int, int]] = []  # (position, samples) of every frame the player schedules
    put = live.timeline.put
    live.timeline.put = lambda at, video, audio: (placed.append((at, len(audio))), put(at, video, audio))
    caplog.set_level(logging.INFO, logger="realtime.session")
    sentence = "Talking on and on so the renderer is kept busy. "
    try:
        engine.cost_s = 0.06  # 3 × real time at 50 fps, 1.2 × at 20: too slow for every rung
        await live.say(sentence * 12, 1)
        async with asyncio.timeout(20):
            while live.rate.fps != 20:
                await asyncio.sleep(0.05)
        assert live.snapshot()["fps"] == 20
        engine.cost_s = 0.002
        await live.say(sentence * 20, 2)
        async with asyncio.timeout(30):
            while live.rate.fps != 50:
                await asyncio.sleep(0.05)
    finally:
        await live.close()
        await pool.aclose()

    steps = [tuple(map(int, m)) for m in re.findall(r"video (\d+) → (\d+) fps", caplog.text)]
    assert steps[:3] == [(50, 30), (30, 25), (25, 20)]
    assert steps[-3:] == [(20, 25), (25, 30), (30, 50)]
    # frames were made at the rates the session went through, and never overlap on the time line
    assert {960, 2400} <= {samples for _, samples in placed}
    assert all(a + length <= b for (a, length), (b, _) in itertools.pairwise(placed))
    assert live.events.states.count("speaking") >= 1 and len(live.events.states) >= 6  # fps changes went out too
