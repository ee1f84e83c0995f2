"""Audio and video tracks: stamps from the session clock, real-time pacing, silence and the idle loop."""

from __future__ import annotations

import asyncio
import fractions
import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from realtime.clock import SessionClock
from realtime.timeline import PACKET_SAMPLES, FrameRate, PlayoutTimeline, avatar_frame_at, samples_per_frame
from realtime.tracks import AvatarAudioTrack, AvatarVideoTrack


@pytest.fixture
def moving_bundle(tmp_path):
    from realtime.avatar.reader import AvatarBundle
    from testkit.bundles import write_astronaut_bundle

    return AvatarBundle.open(write_astronaut_bundle(tmp_path / "moving", frame_count=5, fps=25))


def frame_number(bundle, rgb: np.ndarray) -> int:
    """Which bundle frame ``rgb`` is: idle frames leave as YUV 4:2:0, so the one within its chroma loss."""
    distances = [np.abs(bundle.frames[i].astype(np.int16) - rgb).mean() for i in range(bundle.frame_count)]
    nearest, second = sorted(range(len(distances)), key=distances.__getitem__)[:2]
    assert distances[nearest] < 3.0 and distances[second] > 2 * distances[nearest], distances
    return nearest


class StillBundle:
    """An avatar of one black 16x16 frame: just what the video track reads."""

    fps = 25
    frame_count = 1
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    manifest = SimpleNamespace(width=16, height=16)

    def pingpong_index(self, tick: int) -> int:
        return 0


async def test_audio_is_48k_mono_20ms_packets_stamped_by_packet_index_and_silent_when_idle():
    clock, timeline = SessionClock(), PlayoutTimeline()
    track = AvatarAudioTrack(clock, timeline)
    frames = [await track.recv() for _ in range(5)]
    first = frames[0].pts // PACKET_SAMPLES
    for n, frame in enumerate(frames):
        assert frame.sample_rate == 48_000
        assert frame.time_base == fractions.Fraction(1, 48_000)
        assert frame.samples == 960
        assert len(frame.layout.channels) == 1
        assert frame.pts == (first + n) * 960
        assert not frame.to_ndarray().any()  # silence


async def test_audio_is_paced_in_real_time():
    clock, timeline = SessionClock(), PlayoutTimeline()
    track = AvatarAudioTrack(clock, timeline)
    first = await track.recv()
    started = clock.now()
    for _ in range(25):
        last = await track.recv()
    elapsed = clock.now() - started
    assert elapsed == pytest.approx(0.5, abs=0.06)
    # each packet leaves at its own slot: pts / 48 kHz is the clock time it was sent at
    assert last.pts / 48_000 == pytest.approx(clock.now(), abs=0.03)
    assert (last.pts - first.pts) / 960 == 25


async def test_video_is_stamped_on_the_90khz_clock_at_the_role_fps_and_paced():
    clock, timeline = SessionClock(), PlayoutTimeline()

    track = AvatarVideoTrack(clock, timeline, StillBundle(), FrameRate(25))
    first = await track.recv()
    started = clock.now()
    frames = [await track.recv() for _ in range(10)]
    assert clock.now() - started == pytest.approx(0.4, abs=0.06)
    assert first.time_base == fractions.Fraction(1, 90_000)
    assert [f.pts - first.pts for f in frames] == [3600 * (i + 1) for i in range(10)]
    assert first.pts / 90_000 == pytest.approx(clock.now() - 0.4, abs=0.05)


async def test_idle_video_plays_the_avatar_frames_forwards_then_backwards(moving_bundle):
    clock, timeline = SessionClock(), PlayoutTimeline()
    track = AvatarVideoTrack(clock, timeline, moving_bundle, FrameRate(25))
    received = [await track.recv() for _ in range(12)]
    numbers = [frame_number(moving_bundle, f.to_ndarray(format="rgb24")) for f in received]
    ticks = [f.pts // 3600 for f in received]
    assert numbers == [avatar_frame_at(moving_bundle, tick * 1920) for tick in ticks]
    # a 5-frame bundle loops 0 1 2 3 4 3 2 1 0 ...: every step moves by one frame, and it turns at both ends
    assert all(abs(a - b) == 1 for a, b in itertools.pairwise(numbers))
    assert {0, 4} <= set(numbers)


async def test_scheduled_frame_and_its_audio_leave_with_the_same_timestamp(moving_bundle):
    clock, timeline = SessionClock(), PlayoutTimeline()
    audio_track = AvatarAudioTrack(clock, timeline)
    video_track = AvatarVideoTrack(clock, timeline, moving_bundle, FrameRate(25))
    tick = clock.next_tick(25) + 3
    painted = np.full((512, 512, 3), 7, np.uint8)
    tone = np.arange(1920, dtype=np.int16) + 1  # one 25-fps frame of audio: two packets
    timeline.put(tick * 1920, painted, tone)

    async def take(track, count):  # both tracks are read at once, as two RTP senders do
        return [await track.recv() for _ in range(count)]

    video, audio = await asyncio.gather(take(video_track, 5), take(audio_track, 10))
    shown = [f for f in video if np.array_equal(f.to_ndarray(format="rgb24"), painted)]
    assert len(shown) == 1
    heard = [f for f in audio if f.to_ndarray().any()]
    assert len(heard) == 2
    assert np.array_equal(np.concatenate([f.to_ndarray().ravel() for f in heard]), tone)
    assert shown[0].pts / 90_000 == heard[0].pts / 48_000 == tick / 25


@pytest.mark.looptime  # the stall lasts exactly 0.3 s of the clock however loaded the machine is
async def test_a_late_sender_skips_past_slots_instead_of_falling_behind():
    clock, timeline = SessionClock(), PlayoutTimeline()

    skipped: list[tuple[int, int]] = []
    video = AvatarVideoTrack(
        clock, timeline, StillBundle(), FrameRate(25), on_skipped=lambda n, fps: skipped.append((n, fps))
    )
    audio = AvatarAudioTrack(clock, timeline)
    await video.recv()
    await audio.recv()
    await asyncio.sleep(0.3)  # a stalled encoder
    late_video, late_audio = await video.recv(), await audio.recv()
    assert late_video.pts // 3600 == clock.tick(25)
    assert late_audio.pts // 960 >= clock.tick(50) - 5
    # the skipped slots are reported (the degradation governor hears the sender fell behind)
    assert len(skipped) == 1 and skipped[0][1] == 25 and 6 <= skipped[0][0] <= 8


@pytest.mark.looptime  # the packets are counted, and the clock's time of each is exact
async def test_the_first_packet_after_a_cut_reports_when_its_sound_ends():
    clock, timeline = SessionClock(), PlayoutTimeline()
    heard: list[float] = []
    track = AvatarAudioTrack(clock, timeline, on_cut_heard=heard.append)
    first = await track.recv()
    speech = np.full(10 * PACKET_SAMPLES, 1000, np.int16)  # 200 ms scheduled from the next packet on
    timeline.put(first.pts + PACKET_SAMPLES, np.zeros((2, 2, 3), np.uint8), speech)
    sounding = [await track.recv() for _ in range(3)]
    assert all(frame.to_ndarray().all() for frame in sounding) and not heard

    timeline.clear()
    after = (await track.recv()).to_ndarray().ravel()
    sound = np.flatnonzero(after)
    ends = (sound[-1] + 1 if len(sound) else 0) / 48_000
    assert heard == [clock.now() + ends]
    for _ in range(3):
        await track.recv()
    assert len(heard) == 1  # once per cut


@pytest.mark.looptime
async def test_a_cut_fades_the_speech_out_within_the_next_packet_without_a_click():
    clock, timeline = SessionClock(), PlayoutTimeline()
    track = AvatarAudioTrack(clock, timeline)
    first = await track.recv()
    speech = np.full(10 * PACKET_SAMPLES, 1000, np.int16)  # a hard cut of this steps by 1000
    timeline.put(first.pts + PACKET_SAMPLES, np.zeros((2, 2, 3), np.uint8), speech)
    sent = [(await track.recv()).to_ndarray().ravel() for _ in range(2)]
    timeline.clear()
    timeline.clear()  # an interrupt clears before it stops the stages and again after: the fade stays as it was
    after = [(await track.recv()).to_ndarray().ravel() for _ in range(5)]
    assert [bool(packet.any()) for packet in after] == [True, False, False, False, False]
    assert not after[0][len(after[0]) // 2 :].any()  # silent well before the packet's end
    steps = np.abs(np.diff(np.concatenate([sent[-1], *after]).astype(np.int32)))
    assert steps.max() < 1000 / 20  # the fade: no step anywhere near the hard cut's


async def test_timeline_takes_each_frame_once_and_clear_forgets_everything():
    timeline = PlayoutTimeline()
    audio = np.ones(1600, np.int16)  # 30 fps: 1600 samples a frame, so frames straddle packets
    timeline.put(10 * 1600, np.zeros((2, 2, 3), np.uint8), audio)
    timeline.put(11 * 1600, np.ones((2, 2, 3), np.uint8), audio * 2)
    first_packet = 10 * 1600 // 960
    assert timeline.take_audio(first_packet - 1) is None
    packets = [timeline.take_audio(n) for n in range(first_packet, first_packet + 4)]
    joined = np.concatenate(packets)
    start = 10 * 1600 - first_packet * 960
    assert np.array_equal(joined[start : start + 3200], np.r_[audio, audio * 2])
    assert timeline.take_video(10 * 1600) is not None and timeline.take_video(10 * 1600) is None
    timeline.clear()
    assert timeline.take_video(11 * 1600) is None and len(timeline) == 0


def test_the_frame_on_screen_is_the_one_covering_the_position():
    timeline = PlayoutTimeline()
    timeline.put(0, np.zeros((1, 1, 3), np.uint8), np.ones(1920, np.int16))  # 25 fps
    timeline.put(1920, np.ones((1, 1, 3), np.uint8), np.ones(2400, np.int16))  # then 20 fps
    assert timeline.next_start(0) == 1920
    assert timeline.take_video(2000).start == 1920  # the first one ended at 1920: it is past and dropped
    assert timeline.take_video(0) is None and len(timeline) == 0


def test_fps_must_divide_the_audio_rate():
    with pytest.raises(ValueError):
        samples_per_frame(24_001)


async def test_video_follows_the_frame_rate_and_shows_every_frame_of_a_change_whole(moving_bundle):
    clock, timeline, rate = SessionClock(), PlayoutTimeline(), FrameRate(25)
    track = AvatarVideoTrack(clock, timeline, moving_bundle, rate)
    first = await track.recv()
    start = first.pts * 48_000 // 90_000 + 2 * 1920
    # two 25-fps frames, then (the session degraded) three 20-fps frames, back to back
    positions = [start, start + 1920, start + 3840, start + 6240, start + 8640]
    for n, at in enumerate(positions):
        timeline.put(at, np.full((512, 512, 3), 10 + n, np.uint8), np.ones(1920 if n < 2 else 2400, np.int16))
    rate.fps = 20
    received = [await track.recv() for _ in range(9)]
    painted = {int(f.to_ndarray(format="rgb24")[0, 0, 0]): f.pts for f in received}
    assert [painted.get(10 + n) for n in range(5)] == [at * 90_000 // 48_000 for at in positions]
    # after the speech, idle frames come at 20 fps on its grid (4500 ticks of 90 kHz apart)
    idle = [f.pts for f in received if f.pts > positions[-1] * 90_000 // 48_000]
    assert all(b - a == 4500 for a, b in itertools.pairwise(idle)) and idle
