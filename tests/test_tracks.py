"""Audio and video tracks: stamps from the session clock, real-time pacing, silence and the idle loop."""

from __future__ import annotations

import asyncio
import fractions
import itertools

import numpy as np
import pytest

from realtime.clock import SessionClock
from realtime.timeline import PACKET_SAMPLES, PlayoutTimeline, avatar_frame_at
from realtime.tracks import AvatarAudioTrack, AvatarVideoTrack


@pytest.fixture
def moving_bundle(tmp_path):
    from avatars_app.bundle.reader import AvatarBundle
    from tests.fixtures.bundles import write_astronaut_bundle

    return AvatarBundle.open(write_astronaut_bundle(tmp_path / "moving", frame_count=5, fps=25))


def frame_number(bundle, rgb: np.ndarray) -> int:
    """Which bundle frame ``rgb`` is (exact match)."""
    matches = [i for i in range(bundle.frame_count) if np.array_equal(bundle.frames[i], rgb)]
    assert len(matches) == 1
    return matches[0]


async def test_audio_is_48k_mono_20ms_packets_stamped_by_packet_index_and_silent_when_idle():
    clock, timeline = SessionClock(), PlayoutTimeline(25)
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
    clock, timeline = SessionClock(), PlayoutTimeline(25)
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
    clock, timeline = SessionClock(), PlayoutTimeline(25)

    class StillBundle:
        fps = 25
        frame_count = 1
        frames = np.zeros((1, 16, 16, 3), np.uint8)

        def pingpong_index(self, tick: int) -> int:
            return 0

    track = AvatarVideoTrack(clock, timeline, StillBundle())
    first = await track.recv()
    started = clock.now()
    frames = [await track.recv() for _ in range(10)]
    assert clock.now() - started == pytest.approx(0.4, abs=0.06)
    assert first.time_base == fractions.Fraction(1, 90_000)
    assert [f.pts - first.pts for f in frames] == [3600 * (i + 1) for i in range(10)]
    assert first.pts / 90_000 == pytest.approx(clock.now() - 0.4, abs=0.05)


async def test_idle_video_plays_the_avatar_frames_forwards_then_backwards(moving_bundle):
    clock, timeline = SessionClock(), PlayoutTimeline(25)
    track = AvatarVideoTrack(clock, timeline, moving_bundle)
    received = [await track.recv() for _ in range(12)]
    numbers = [frame_number(moving_bundle, f.to_ndarray(format="rgb24")) for f in received]
    ticks = [f.pts // 3600 for f in received]
    assert numbers == [avatar_frame_at(moving_bundle, tick, 25) for tick in ticks]
    # a 5-frame bundle loops 0 1 2 3 4 3 2 1 0 ...: every step moves by one frame, and it turns at both ends
    assert all(abs(a - b) == 1 for a, b in itertools.pairwise(numbers))
    assert {0, 4} <= set(numbers)


async def test_scheduled_frame_and_its_audio_leave_with_the_same_timestamp(moving_bundle):
    clock, timeline = SessionClock(), PlayoutTimeline(25)
    audio_track, video_track = AvatarAudioTrack(clock, timeline), AvatarVideoTrack(clock, timeline, moving_bundle)
    tick = clock.next_tick(25) + 3
    painted = np.full((512, 512, 3), 7, np.uint8)
    tone = np.arange(1920, dtype=np.int16) + 1  # one 25-fps frame of audio: two packets
    timeline.put(tick, painted, tone)

    async def take(track, count):  # both tracks are read at once, as two RTP senders do
        return [await track.recv() for _ in range(count)]

    video, audio = await asyncio.gather(take(video_track, 5), take(audio_track, 10))
    shown = [f for f in video if np.array_equal(f.to_ndarray(format="rgb24"), painted)]
    assert len(shown) == 1
    heard = [f for f in audio if f.to_ndarray().any()]
    assert len(heard) == 2
    assert np.array_equal(np.concatenate([f.to_ndarray().ravel() for f in heard]), tone)
    assert shown[0].pts / 90_000 == heard[0].pts / 48_000 == tick / 25


async def test_a_late_sender_skips_past_slots_instead_of_falling_behind():
    clock, timeline = SessionClock(), PlayoutTimeline(25)

    class StillBundle:
        fps = 25
        frame_count = 1
        frames = np.zeros((1, 16, 16, 3), np.uint8)

        def pingpong_index(self, tick: int) -> int:
            return 0

    video = AvatarVideoTrack(clock, timeline, StillBundle())
    audio = AvatarAudioTrack(clock, timeline)
    await video.recv()
    await audio.recv()
    await asyncio.sleep(0.3)  # a stalled encoder
    late_video, late_audio = await video.recv(), await audio.recv()
    assert late_video.pts // 3600 == clock.tick(25)
    assert late_audio.pts // 960 >= clock.tick(50) - 5


async def test_timeline_takes_each_frame_once_and_clear_forgets_everything():
    timeline = PlayoutTimeline(30)  # 1600 samples a frame: frames straddle packets
    audio = np.ones(1600, np.int16)
    timeline.put(10, np.zeros((2, 2, 3), np.uint8), audio)
    timeline.put(11, np.ones((2, 2, 3), np.uint8), audio * 2)
    first_packet = 10 * 1600 // 960
    assert timeline.take_audio(first_packet - 1) is None
    packets = [timeline.take_audio(n) for n in range(first_packet, first_packet + 4)]
    joined = np.concatenate(packets)
    start = 10 * 1600 - first_packet * 960
    assert np.array_equal(joined[start : start + 3200], np.r_[audio, audio * 2])
    assert timeline.take_video(10) is not None and timeline.take_video(10) is None
    timeline.clear()
    assert timeline.take_video(11) is None and len(timeline) == 0


def test_fps_must_divide_the_audio_rate():
    with pytest.raises(ValueError):
        PlayoutTimeline(24_001)
