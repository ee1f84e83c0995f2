"""The speech pipeline with known engines: text → paired AV segments on the clock; interrupt cuts everything."""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from realtime.audio import SAMPLE_RATE, mel_window, melspectrogram, to_16k
from realtime.clock import SessionClock
from realtime.engines.tts.base import PCM, TTSError
from realtime.frames import AudioChunk, AVSegment, FrameJob, MessageEnd
from realtime.pipeline import PipelineFull, PlayoutSettings, SpeechPipeline, TaskOwner
from realtime.pipeline.features import FeatureStage, _settled
from realtime.pipeline.player import Player
from realtime.pipeline.render import RenderStage
from realtime.pipeline.stage import Generation, Stage
from realtime.timeline import FADE_SAMPLES, FrameRate, PlayoutTimeline, samples_per_frame
from realtime.tracks import AvatarAudioTrack
from testkit.defaults import playout_settings
from testkit.waits import until
from tests.fixtures.fake_engines import TTS_RATE, BlockTTS, LevelLipSync, block_level, level_of, painted_level

FPS = 25


class Listener:
    """Records the pipeline's callbacks with the clock time they came at."""

    def __init__(self, clock: SessionClock) -> None:
        self.clock = clock
        self.events: list[tuple[str, int, str, float]] = []

    def audio_started(self, message_id: int) -> None:
        self.events.append(("audio", message_id, "", self.clock.now()))

    def sentence_on_air(self, message_id: int, text: str) -> None:
        self.events.append(("on_air", message_id, text, self.clock.now()))

    def message_played(self, message_id: int) -> None:
        self.events.append(("played", message_id, "", self.clock.now()))

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None:
        self.events.append(("failed", message_id, text, self.clock.now()))

    def of(self, kind: str, message_id: int | None = None) -> list[tuple[str, int, str, float]]:
        return [e for e in self.events if e[0] == kind and (message_id is None or e[1] == message_id)]

    async def wait(self, kind: str, message_id: int, timeout: float = 10.0) -> tuple[str, int, str, float]:
        async with asyncio.timeout(timeout):
            while not self.of(kind, message_id):
                await asyncio.sleep(0.005)
        return self.of(kind, message_id)[0]


class RecordingTimeline(PlayoutTimeline):
    """Keeps every frame the player schedules: (tick, video, audio, clock tick when scheduled), ticks at ``fps``."""

    def __init__(self, fps: int, clock: SessionClock) -> None:
        super().__init__()
        self.fps = fps
        self.clock = clock
        self.puts: list[tuple[int, np.ndarray, np.ndarray, int]] = []

    def put(self, at: int, video: np.ndarray, audio: np.ndarray) -> None:
        assert at % samples_per_frame(self.fps) == 0  # on the fps grid
        self.puts.append((at // samples_per_frame(self.fps), video, audio, self.clock.tick(self.fps)))
        super().put(at, video, audio)


@dataclass
class Harness:
    pipeline: SpeechPipeline
    clock: SessionClock
    timeline: RecordingTimeline
    listener: Listener
    engine: LevelLipSync
    owner: TaskOwner


@pytest.fixture
async def make_pipeline(astronaut_bundle):
    owners: list[TaskOwner] = []

    def make(tts, settings: PlayoutSettings | None = None) -> Harness:
        clock = SessionClock()
        timeline = RecordingTimeline(FPS, clock)
        listener = Listener(clock)
        engine = LevelLipSync()
        owner = TaskOwner()
        owners.append(owner)

        async def render(requests):
            return await asyncio.get_running_loop().run_in_executor(None, engine.render_batch, requests)

        pipeline = SpeechPipeline(
            owner=owner,
            clock=clock,
            timeline=timeline,
            rate=FrameRate(FPS),
            avatar=astronaut_bundle,
            tts=tts,
            render=render,
            listener=listener,
            settings=settings or playout_settings(),
        )
        pipeline.start()
        return Harness(pipeline, clock, timeline, listener, engine, owner)

    yield make
    for owner in owners:
        await owner.aclose()


def expected_frames(tts: BlockTTS, sentence: str) -> int:
    return math.ceil(len(to_16k(tts.waveform(sentence), TTS_RATE)) * FPS / SAMPLE_RATE)


async def test_text_becomes_frames_that_each_carry_their_own_audio(make_pipeline):
    tts = BlockTTS()
    h = make_pipeline(tts)
    chunks = h.pipeline.say("Hello world. How are you?", message_id=1)
    assert chunks == 2
    await h.listener.wait("played", 1)

    assert [e[2] for e in h.listener.of("on_air", 1)] == [s for s in tts.started]
    total = sum(expected_frames(tts, s) for s in tts.started)
    assert len(h.timeline.puts) == total == 24
    ticks = [put[0] for put in h.timeline.puts]
    assert ticks == sorted(set(ticks))
    assert ticks[-1] - ticks[0] <= total + 2  # played back to back, no waiting between sentences

    levels = []
    for _tick, video, audio, _now in h.timeline.puts:
        assert len(audio) == 48_000 // FPS
        heard, seen = level_of(audio), painted_level(video)
        assert seen == pytest.approx(heard, abs=0.01)  # the frame was rendered from exactly this audio
        levels.append(heard)
    # frame i of a sentence is its character i (one 40 ms block per character): the cut is aligned
    spoken = "".join(s.strip() for s in tts.started)
    assert levels == pytest.approx([block_level(c) / math.sqrt(2) for c in spoken], abs=0.03)


async def test_events_happen_when_their_frames_are_on_air(make_pipeline):
    h = make_pipeline(BlockTTS())
    h.pipeline.say("Hello world. How are you?", message_id=7)
    _, _, _, played_at = await h.listener.wait("played", 7)
    first_ticks = [h.timeline.puts[0][0], h.timeline.puts[12][0]]
    on_air = h.listener.of("on_air", 7)
    for (_, _, _, at), tick in zip(on_air, first_ticks, strict=True):
        assert at == pytest.approx(tick / FPS, abs=0.03)
    assert played_at >= (h.timeline.puts[-1][0] + 1) / FPS - 0.01
    assert h.listener.of("audio", 7)[0][3] < on_air[0][3]


async def test_player_stays_only_a_few_frames_ahead_of_the_clock(make_pipeline):
    settings = playout_settings(lead_frames=2, max_ahead_frames=4)
    h = make_pipeline(BlockTTS(), settings)
    h.pipeline.say("A much longer sentence, so that many frames queue up behind the player.", message_id=1)
    await h.listener.wait("played", 1)
    ahead = [tick - now for tick, _, _, now in h.timeline.puts]
    assert len(ahead) > 50
    assert min(ahead) >= 1  # never scheduled into a slot already on air
    assert max(ahead) <= settings.max_ahead_frames + 1


async def test_interrupt_empties_every_queue_behind_the_cut(make_pipeline):
    tts = BlockTTS(delay_s=0.05, piece_s=0.1)
    h = make_pipeline(tts)
    text = " ".join(f"This is sentence number {n} of the answer." for n in range(8))
    h.pipeline.say(text, message_id=1)
    await h.listener.wait("on_air", 1)
    await until(lambda: len(tts.started) >= 2, what="later sentences in the queues")  # mid-answer

    await h.pipeline.restart()
    cut = h.clock.now()
    puts_at_cut = len(h.timeline.puts)
    assert all(stage.inbox.empty() for stage in h.pipeline.stages)
    assert len(h.timeline) == 0
    assert tts.cancelled  # the synthesis in flight was stopped, not left to finish
    packet = h.clock.next_tick(50)
    assert all(h.timeline.take_audio(n) is None for n in range(packet, packet + 10))  # silence from the next packet

    # A fresh message goes through every stage after the cut: whatever was made before the cut and still on its
    # way would have reached the air before or with it, so once it has played, only its own frames came after.
    h.pipeline.say("Fresh start here.", message_id=2)
    await h.listener.wait("played", 2)
    assert [e[2] for e in h.listener.of("on_air", 2)] == ["Fresh start here."]
    assert len(h.timeline.puts) - puts_at_cut == expected_frames(tts, "Fresh start here.")
    assert not h.listener.of("played", 1)
    assert all(at < cut for _, _, _, at in h.listener.of("on_air", 1))


async def test_an_interrupt_silences_the_audio_track_within_one_packet_and_fades_it(make_pipeline):
    h = make_pipeline(BlockTTS(delay_s=0.05, piece_s=0.1, tone_hz=277))
    track = AvatarAudioTrack(h.clock, h.timeline)
    packets: list[np.ndarray] = []

    async def pull() -> None:  # as aiortc's sender does, one packet per 20 ms
        while True:
            packets.append((await track.recv()).to_ndarray().ravel().astype(np.int32))

    def loud_at_its_end(packet: np.ndarray) -> bool:
        """Cutting after this packet without a fade would step by more than twice the speech's own steepest step."""
        return abs(packet[-1]) > 2 * np.abs(np.diff(packet)).max()

    h.owner.spawn(pull(), name="test.audio")
    h.pipeline.say(" ".join(f"This is sentence number {n} of the answer." for n in range(8)), message_id=1)
    await until(lambda: len(packets) > 10 and loud_at_its_end(packets[-1]), what="speech loud at a packet's end")
    cut = len(packets)  # no await between here and the cut: every packet from this index on was taken after it
    await h.pipeline.restart()
    await until(lambda: len(packets) > cut + 10, what="ten packets after the cut")

    after = packets[cut : cut + 10]
    assert not any(packet.any() for packet in after[1:])  # silence from the second packet on
    assert after[0].any() and not after[0][FADE_SAMPLES:].any()  # the first fades out in its first 5 ms
    steps = np.abs(np.diff(np.concatenate([packets[cut - 1], *after])))
    assert steps.max() < abs(packets[cut - 1][-1])  # no click: every step is smaller than a hard cut's


@pytest.mark.looptime  # the slots pass on a fast-forwarded clock
async def test_the_player_drops_a_segment_cut_while_it_waited_for_its_slot():
    clock, generation = SessionClock(), Generation()
    timeline = RecordingTimeline(FPS, clock)
    player = Player(
        generation, clock, timeline, Listener(clock), rate=FrameRate(FPS), lead_frames=1, max_ahead_frames=2, maxsize=16
    )
    owner = TaskOwner()
    owner.spawn(player.run(), name="test.player")
    audio = np.ones(samples_per_frame(FPS), np.int16)
    for _ in range(10):
        player.inbox.put_nowait(AVSegment(generation.value, 1, np.zeros((2, 2, 3), np.uint8), audio))
    await until(lambda: len(timeline.puts) >= 2, what="the player ahead of the clock, waiting for the next slot")

    generation.bump()  # what SpeechPipeline.silence does, while the player's task still runs
    player.clear()
    scheduled = len(timeline.puts)
    await asyncio.sleep(10 / FPS)  # the slots of every queued segment pass
    assert len(timeline.puts) == scheduled and len(timeline) == 0
    await owner.aclose()


async def test_say_is_all_or_nothing_when_the_queue_is_full(make_pipeline):
    h = make_pipeline(BlockTTS(delay_s=1.0), playout_settings(max_queued_sentences=4))
    h.pipeline.say("One two three.", message_id=1)
    queued = h.pipeline.speech.inbox.qsize()
    with pytest.raises(PipelineFull):
        h.pipeline.say("Four five six. Seven eight nine. Ten eleven twelve.", message_id=2)
    assert h.pipeline.speech.inbox.qsize() == queued


async def test_a_sentence_the_engine_cannot_speak_is_skipped_and_the_answer_goes_on(make_pipeline):
    class FlakyTTS(BlockTTS):
        async def synthesize(self, text):
            if "broken" in text:
                raise TTSError("server said no")
            async for pcm in super().synthesize(text):
                yield pcm

    h = make_pipeline(FlakyTTS())
    h.pipeline.say("This one is broken. This one works.", message_id=3)
    await h.listener.wait("played", 3)
    assert [e[2] for e in h.listener.of("failed", 3)] == ["This one is broken. "]
    assert [e[2] for e in h.listener.of("on_air", 3)] == ["This one works."]


class Sink(Stage):
    """The end of a stage under test: whatever it emitted waits in ``inbox``."""

    name = "sink"

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation, maxsize=0)
        self._items: list = []

    @property
    def items(self) -> list:
        while not self.inbox.empty():
            self._items.append(self.inbox.get_nowait())
        return self._items

    async def process(self, item) -> None:
        raise AssertionError("a sink is only read")


async def run_features(astronaut_bundle, pieces: list[np.ndarray], fps: int = FPS) -> list[FrameJob]:
    generation = Generation()
    stage = FeatureStage(generation, astronaut_bundle, FrameRate(fps), maxsize=0, first_start=lambda: 0)
    sink = Sink(generation)
    stage.downstream = sink
    for piece in pieces:
        await stage.process(AudioChunk(0, 1, "sentence", piece))
    await stage.process(AudioChunk(0, 1, "sentence", np.zeros(0, np.int16), end_of_sentence=True))
    await stage.process(MessageEnd(0, 1))
    assert isinstance(sink.items[-1], MessageEnd)
    return sink.items[:-1]


@pytest.mark.parametrize("fps", [25, 30])
async def test_streamed_audio_gives_the_same_frames_as_a_whole_sentence(astronaut_bundle, fps):
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(int(2.37 * SAMPLE_RATE)) * 3000).astype(np.int16)
    cuts = np.sort(rng.choice(np.arange(1, len(audio)), 9, replace=False))
    whole = await run_features(astronaut_bundle, [audio], fps)
    streamed = await run_features(astronaut_bundle, np.split(audio, cuts), fps)

    frames = math.ceil(len(audio) * fps / SAMPLE_RATE)
    assert len(whole) == len(streamed) == frames
    padded = np.zeros(round(frames * SAMPLE_RATE / fps), np.int16)
    padded[: len(audio)] = audio
    mel = melspectrogram(padded)
    for i, (a, b) in enumerate(zip(whole, streamed, strict=True)):
        assert np.allclose(a.request.mel, mel_window(mel, i, fps), atol=1e-4)
        assert np.allclose(b.request.mel, a.request.mel, atol=1e-4)
        assert np.abs(a.audio.astype(int) - b.audio.astype(int)).max() <= 1
        assert len(a.audio) == 48_000 // fps
        assert np.array_equal(a.request.audio, b.request.audio)
        assert (a.subtitle == "sentence") == (i == 0)
    joined = np.concatenate([job.request.audio for job in whole])
    assert np.allclose(joined[: len(audio)], audio / 32768.0)


async def test_settled_frames_never_need_audio_that_has_not_arrived(astronaut_bundle):
    for length in range(0, 20_000, 37):
        settled = next(f for f in itertools.count() if not _settled(f * 48_000 // FPS, length))
        # frame f's window ends at column int(80 f / 25) + 15, whose STFT needs samples up to 200 c + 400
        needed = [(int(80 * f / FPS) + 15) * 200 + 400 for f in range(settled + 1)]
        assert all(n <= length for n in needed[:settled])
        assert needed[settled] > length


async def test_render_batches_what_is_waiting_and_keeps_message_ends_in_order(astronaut_bundle):
    generation = Generation()
    batches: list[int] = []

    async def render(requests):
        batches.append(len(requests))
        return [np.full((2, 2, 3), r.frame_index, np.uint8) for r in requests]

    stage = RenderStage(generation, render, batch_size=8, maxsize=0)
    sink = Sink(generation)
    stage.downstream = sink

    def job(index: int) -> FrameJob:
        from realtime.engines.lipsync.base import LipSyncRequest

        request = LipSyncRequest(astronaut_bundle, index, np.zeros((80, 16), np.float32), np.zeros(640, np.float32))
        return FrameJob(0, 1, request, np.zeros(1920, np.int16))

    for index in range(5):
        stage.inbox.put_nowait(job(index))
    stage.inbox.put_nowait(MessageEnd(0, 1))
    for index in range(5, 8):
        stage.inbox.put_nowait(job(index))
    task = asyncio.ensure_future(stage.run())
    async with asyncio.timeout(2):
        while len(sink.items) < 9:
            await asyncio.sleep(0.005)
    task.cancel()
    assert batches == [5, 3]
    kinds = [type(item).__name__ for item in sink.items]
    assert kinds == ["AVSegment"] * 5 + ["MessageEnd"] + ["AVSegment"] * 3
    assert [int(item.video[0, 0, 0]) for item in sink.items if hasattr(item, "video")] == list(range(8))


async def test_tts_audio_at_any_rate_is_resampled_to_16k(make_pipeline):
    class ToneAt8k(BlockTTS):
        async def synthesize(self, text):
            t = np.arange(8000) / 8000
            yield PCM((np.sin(2 * np.pi * 200 * t) * 16000).astype(np.int16), 8000)

    h = make_pipeline(ToneAt8k())
    h.pipeline.say("one second", message_id=1)
    await h.listener.wait("played", 1)
    assert len(h.timeline.puts) == FPS  # 1 s of audio at 8 kHz is 25 frames, whatever the rate
