"""Degradation under load: a session steps down one ladder — fps rungs, then half-size frames, then the lighter
lip-sync engine — when it falls behind its clock, and climbs back in reverse order when there is headroom. The
ladder logic runs on a fake clock; a live session made slow on purpose goes down and up the whole ladder while
a real aiortc peer receives half-size frames when degraded; the state, the log and the metrics show each step."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from dataclasses import replace

import aiohttp
import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest

from realtime.audio import SAMPLE_RATE, melspectrogram, to_48k
from realtime.degrade import DegradeGovernor, DegradePolicy, Level, Step, ladder_for, rungs_for
from realtime.engines.tts.base import VoiceSettings
from realtime.frames import AudioChunk, FrameJob
from realtime.pipeline.features import FeatureStage
from realtime.pipeline.stage import Generation, Stage
from realtime.session import LiveSession
from realtime.timeline import FrameRate
from testkit.bundles import write_astronaut_bundle, write_random_wav2lip_checkpoint
from testkit.defaults import degrade_policy, model_pool, session_config
from testkit.peers import ReceivingPeer
from testkit.voice import RecordingEvents
from tests.fixtures.fake_engines import BlockTTS, LevelLipSync
from tests.fixtures.processes import child_env, serving_daphne
from tests.fixtures.prometheus import parse, total
from tests.test_scale_out import Socket

POLICY = degrade_policy(late_frames=3, window_s=2.0, hold_s=2.0, recover_s=5.0, headroom=0.7)
FULL_LADDER = [(50, 30), (30, 25), (25, 20), (20, "half"), ("half", "default")]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def named(level: Level) -> int | str:
    """A level as the tests write it: its fps, "half", or the lighter engine's name."""
    return level.lipsync_engine or ("half" if level.half_size else level.fps)


def governor(
    fps: int = 50, engine: str = "wav2lip", policy: DegradePolicy = POLICY
) -> tuple[DegradeGovernor, Clock, list[tuple[int | str, int | str]]]:
    clock, changes = Clock(), []
    gov = DegradeGovernor(
        fps, engine, policy, now=clock, on_change=lambda old, new, why: changes.append((named(old), named(new)))
    )
    return gov, clock, changes


def run(gov: DegradeGovernor, clock: Clock, seconds: float, *, frame_cost_s, late_every_s: float | None = None):
    """Simulate ``seconds`` of speech: a render report every 0.1 s (frames at the current fps, each costing
    ``frame_cost_s``, or ``frame_cost_s(level)``), a late frame every ``late_every_s``."""
    next_late = late_every_s
    for _ in range(round(seconds / 0.1)):
        clock.now += 0.1
        fps = gov.level.fps
        frames = max(1, round(fps * 0.1))
        cost = frame_cost_s(gov.level) if callable(frame_cost_s) else frame_cost_s
        gov.rendered(cost * frames, frames)
        if next_late is not None and clock.now >= next_late:
            gov.late(1, fps)
            next_late += late_every_s


def test_rungs_stop_at_the_roles_own_fps():
    assert rungs_for(50, (50, 30, 25, 20)) == (50, 30, 25, 20)
    assert rungs_for(25, (50, 30, 25, 20)) == (25, 20)
    assert rungs_for(20, (50, 30, 25, 20)) == (20,)


def test_the_ladder_is_fps_then_half_size_then_the_lighter_engine_for_wav2lip_only():
    assert ladder_for(25, "wav2lip", POLICY) == (
        Level(25),
        Level(20, step=Step.FPS),
        Level(20, half_size=True, step=Step.RESOLUTION),
        Level(20, half_size=True, lipsync_engine="default", step=Step.ENGINE),
    )
    assert ladder_for(25, "default", POLICY) == (
        Level(25),
        Level(20, step=Step.FPS),
        Level(20, half_size=True, step=Step.RESOLUTION),
    )
    full_size = degrade_policy(half_size=False)
    assert ladder_for(20, "wav2lip", full_size) == (Level(20), Level(20, lipsync_engine="default", step=Step.ENGINE))
    assert ladder_for(20, "wav2lip", degrade_policy(half_size=False, lighter_engines=())) == (Level(20),)


def test_steps_down_one_level_at_a_time_while_late_and_never_below_the_last():
    gov, clock, changes = governor()
    run(gov, clock, 40, frame_cost_s=0.01, late_every_s=0.3)  # load fine, but frames keep missing their slots
    assert changes == FULL_LADDER
    assert gov.level == Level(20, half_size=True, lipsync_engine="default", step=Step.ENGINE) and gov.degraded


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


def test_a_render_that_began_before_a_change_does_not_judge_the_new_level():
    gov, clock, changes = governor()
    clock.now = 3.0
    gov.late(3, 50)
    assert changes == [(50, 30)]
    clock.now = 5.5
    gov.rendered(3.0, 30)  # 100 ms a frame, but that wait began at 2.5 s: at 50 fps
    assert changes == [(50, 30)] and gov.load() is None
    clock.now = 5.6
    gov.rendered(0.4, 8)  # 50 ms a frame at 30 fps: 1.5 × real time
    assert changes == [(50, 30), (30, 25)]


def test_recovers_a_level_at_a_time_in_reverse_order_with_headroom_only():
    gov, clock, changes = governor()
    run(gov, clock, 40, frame_cost_s=0.01, late_every_s=0.3)
    assert changes == FULL_LADDER
    changes.clear()
    run(gov, clock, 8, frame_cost_s=0.04)  # 40 ms a frame: 0.8 of real time at 20 fps, above the 0.7 headroom
    assert changes == []
    run(gov, clock, 60, frame_cost_s=0.005)  # cheap again
    assert changes == [(new, old) for old, new in reversed(FULL_LADDER)]
    assert not gov.degraded and gov.level == Level(50)


def heavy_and_light(slowness: float):
    """Costs a frame on a machine ``slowness`` times slower than idle: Wav2Lip 12 ms, the default engine 2 ms."""
    return lambda level: (0.002 if level.lipsync_engine else 0.012) * slowness


def test_climbs_back_to_the_heavy_engine_only_when_its_predicted_load_has_room():
    gov, clock, changes = governor(20)
    run(gov, clock, 12, frame_cost_s=heavy_and_light(5))  # Wav2Lip at 60 ms a frame: 1.2 × real time at 20 fps
    assert changes == [(20, "half"), ("half", "default")]
    changes.clear()
    # The light engine costs 0.2 of real time, but Wav2Lip would still cost 1.2: no climb, no flapping.
    run(gov, clock, 30, frame_cost_s=heavy_and_light(5))
    assert changes == []
    run(gov, clock, 30, frame_cost_s=heavy_and_light(1))  # the load fell: both engines got 5 × cheaper
    assert changes == [("default", "half"), ("half", 20)]


def test_a_quiet_session_does_not_climb_without_evidence():
    gov, clock, changes = governor()
    run(gov, clock, 40, frame_cost_s=0.01, late_every_s=0.3)
    changes.clear()
    for _ in range(100):  # a minute of silence: nothing rendered, nothing late
        clock.now += 0.6
        gov.late(0, gov.level.fps)
    assert changes == []


def test_a_step_up_that_was_too_early_doubles_the_wait_before_the_next():
    gov, clock, changes = governor(25, engine="default", policy=replace(POLICY, half_size=False))
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
    gov, clock, changes = governor(policy=degrade_policy(enabled=False))
    run(gov, clock, 10, frame_cost_s=0.1, late_every_s=0.1)
    assert changes == [] and gov.level == Level(50)


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


class Machine:
    """How much slower than idle the worker is: the test's stand-in for other sessions' load, felt by both
    engines (they share the pool's render thread)."""

    slowness = 1.0


class SlowLipSync(LevelLipSync):
    """LevelLipSync taking ``cost_s`` a frame, times the machine's slowness (in the render thread)."""

    def __init__(self, machine: Machine, cost_s: float) -> None:
        super().__init__()
        self.machine, self.cost_s = machine, cost_s

    def render_batch(self, requests):
        time.sleep(self.cost_s * self.machine.slowness * len(requests))
        return super().render_batch(requests)


def steps_in(log: str) -> list[tuple[str, str]]:
    return re.findall(r"quality (down|up) \((\w+)\)", log)


def degrade_steps() -> dict[tuple[str, str], float]:
    samples = parse(generate_latest().decode())
    return {
        (direction, step): total(samples, "livehuman_degrade_steps_total", direction=direction, step=step)
        for direction in ("down", "up")
        for step in ("fps", "resolution", "engine")
    }


@pytest.mark.usefixtures("loopback_ice")
async def test_a_live_session_goes_down_the_whole_ladder_under_load_and_back_up(tmp_path, caplog):
    machine = Machine()
    heavy, light = SlowLipSync(machine, 0.012), SlowLipSync(machine, 0.002)  # "wav2lip" and the lighter one
    pool = model_pool(
        device="cpu",
        resolve=lambda kind, name: (
            (lambda device: heavy if name == "wav2lip" else light) if kind == "lipsync" else (lambda v: BlockTTS())
        ),
    )
    config = session_config(
        session_id="degrading",
        role_id=1,
        role_name="fast talker",
        fps=50,
        avatar_path=write_astronaut_bundle(tmp_path / "avatar", frame_count=1),
        lipsync_engine="wav2lip",
        tts_engine="block",
        voice=VoiceSettings(),
        degrade=degrade_policy(late_frames=2, window_s=0.5, hold_s=0.3, recover_s=0.6, headroom=0.7),
    )
    counted_before = degrade_steps()
    live = await LiveSession.open(config, pool, RecordingEvents())
    client = ReceivingPeer()
    placed: list[tuple[int, int]] = []  # (position, samples) of every frame the player schedules
    put = live.timeline.put
    live.timeline.put = lambda at, video, audio: (placed.append((at, len(audio))), put(at, video, audio))
    caplog.set_level(logging.INFO, logger="realtime.session")
    sentence = "Talking on and on so the renderer is kept busy. "
    last = len(live.governor.levels) - 1
    try:
        await client.accept(await live.accept_offer(await client.offer()))
        machine.slowness = 5  # Wav2Lip at 60 ms a frame: 3 × real time at 50 fps, 1.2 × at 20
        await live.say(sentence * 20, 1)
        async with asyncio.timeout(30):
            while live.governor.index != last or not light.batches:
                await asyncio.sleep(0.05)
        assert live.snapshot()["degrade"] == {
            "level": 5,
            "levels": 6,
            "step": "engine",
            "fps": 20,
            "half_size": True,
            "lipsync_engine": "default",
        }
        async with asyncio.timeout(10):  # the peer decodes half-size frames: 256 × 256 of the 512 × 512 avatar
            while not client.video or client.video[-1].data.shape[:2] != (256, 256):
                await asyncio.sleep(0.05)
        machine.slowness = 1  # the load is gone
        await live.say(sentence * 40, 2)
        async with asyncio.timeout(60):
            while live.governor.index != 0:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(10):  # full size again
            while client.video[-1].data.shape[:2] != (512, 512):
                await asyncio.sleep(0.05)
        assert live.snapshot()["degrade"]["level"] == 0 and live.snapshot()["fps"] == 50
    finally:
        await client.close()
        await live.close()
        await pool.aclose()

    steps = steps_in(caplog.text)
    down = [("down", "fps")] * 3 + [("down", "resolution"), ("down", "engine")]
    assert steps[:5] == down
    # Then back up in reverse order. On a busy machine a late frame may send it down a level on the way (and up
    # again): every step is still the next level down or the last one undone, ending at the top.
    index = 5
    for direction, step in steps[5:]:
        index += 1 if direction == "down" else -1
        assert step == down[index if direction == "up" else index - 1][1], steps
    assert index == 0 and steps[-1] == ("up", "fps"), steps
    counted = degrade_steps()
    for key in set(steps):
        assert counted[key] - counted_before[key] == steps.count(key)
    # frames were made at the rates the session went through, and never overlap on the time line
    assert {960, 2400} <= {samples for _, samples in placed}
    assert all(a + length <= b for (a, length), (b, _) in itertools.pairwise(placed))
    assert live.events.states.count("speaking") >= 1 and len(live.events.states) >= 10  # every step went out too


# --- a real server ---------------------------------------------------------------------------------------------

TOKEN = "degrade-scrape-token"


@pytest.fixture
def wav2lip_session(chat_session, tmp_path):
    """The chat session's role lip-synced by a real Wav2Lip (a random 96-px checkpoint): on this CPU far slower than
    real time, so the session has to step down to the default engine."""
    avatar = chat_session.role.avatar
    avatar.lipsync_engine = "wav2lip"
    avatar.save(update_fields=["lipsync_engine"])
    return chat_session, write_random_wav2lip_checkpoint(tmp_path / "wav2lip.pth")


def state_levels(socket: Socket) -> list[dict]:
    return [event["degrade"] for event in socket.events if event["type"] == "state"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_ice")
async def test_an_overloaded_wav2lip_session_on_daphne_shows_every_step(wav2lip_session, world_a, tmp_path):
    """On a real daphne, over a real WebSocket: a Wav2Lip role that cannot keep up steps 25 → 20 fps → half size →
    the default engine; each step reaches the page in a ``state`` message, REST ``state`` reports the level, the
    client decodes half-size frames, and ``/metrics`` counts the steps and the session's level."""
    chat_session, checkpoint = wav2lip_session
    env = child_env(
        LIVEHUMAN_METRICS_TOKEN=TOKEN,
        LIVEHUMAN_WAV2LIP_CHECKPOINT=str(checkpoint),
        LIVEHUMAN_LIPSYNC_BATCH_SIZE="2",  # frequent render reports: each step is judged sooner
        LIVEHUMAN_DEGRADE_HOLD_S="0.5",
        LIVEHUMAN_DEGRADE_WINDOW_S="4",
        LIVEHUMAN_DEGRADE_LATE_FRAMES="2",
    )
    session_id, headers = str(chat_session.pk), {"Authorization": f"Api-Key {world_a.raw_key}"}
    with serving_daphne(tmp_path / "daphne.log", env) as base:
        client = ReceivingPeer()
        async with aiohttp.ClientSession() as http, httpx.AsyncClient(base_url=base, headers=headers) as rest:
            ws_url = base.replace("http", "ws") + f"/ws/sessions/{session_id}/?api_key={world_a.raw_key}"
            socket = Socket(await http.ws_connect(ws_url))
            try:
                await socket.wait_for("state", timeout=90)  # Wav2Lip (torch) and the default engine load first
                await socket.ws.send_json({"type": "offer", "sdp": await client.offer()})
                await client.accept((await socket.wait_for("answer"))["sdp"])
                await socket.ws.send_json({"type": "say", "text": "Counting slowly to keep the model busy. " * 8})
                async with asyncio.timeout(90):
                    while not state_levels(socket) or state_levels(socket)[-1]["level"] != 3:
                        await asyncio.sleep(0.1)
                state = (await rest.get(f"/api/v1/sessions/{session_id}/state/")).json()
                async with asyncio.timeout(20):  # the client decodes half-size frames of the 512 × 512 avatar
                    while not client.video or client.video[-1].data.shape[:2] != (256, 256):
                        await asyncio.sleep(0.1)
                async with httpx.AsyncClient() as scraper:
                    metrics = await scraper.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            finally:
                await client.close()
                await socket.close()

    levels = [(level["level"], level["step"], level["fps"], level["half_size"]) for level in state_levels(socket)]
    firsts = [next(seen for seen in levels if seen[0] == n) for n in range(4)]
    assert firsts == [
        (0, "top", 25, False),
        (1, "fps", 20, False),
        (2, "resolution", 20, True),
        (3, "engine", 20, True),
    ]
    assert state["degrade"] == {
        "level": 3,
        "levels": 4,
        "step": "engine",
        "fps": 20,
        "half_size": True,
        "lipsync_engine": "default",
    }
    samples = parse(metrics.text)
    for step in ("fps", "resolution", "engine"):
        assert total(samples, "livehuman_degrade_steps_total", direction="down", step=step) >= 1, step
    assert total(samples, "livehuman_session_degrade_level", level="3", step="engine") == 1
