"""Voice conversation latency: voice end → first reply audio packet and first video frame at the client.

A LiveSession with the conversation's default engines (silero VAD,
pocketsphinx, the echo LLM, Piper, the default lip-sync) talks to an aiortc
client in the same process over loopback WebRTC. The client's mic track plays
Piper sentences at real time, one turn at a time, and waits for each answer
to finish. Per turn:

- voice end: when the last audible sample of the question left the client;
- end of turn: when the VAD decided the turn was over (end-of-turn time = the
  moment the user Message was stored less its asr_ms);
- the answer Message's timings (ASR tail, LLM first token, TTS first audio,
  first frame on air), all from the end of turn;
- first audio / first frame at the client: arrival of the audio packet and
  video frame whose timestamps are the answer's first frame on air.

Stage shares are of the voice end → first audio total: VAD end of turn
(split into the VAD's own decision, measured offline on the same audio, and
the rest: the mic's way in over WebRTC), ASR tail, LLM first token (the echo
engine: ~0, plus storing the turn), TTS first audio, first frame, and
transport (on air → arrival at the client).

    python -m bench.conversation [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
django.setup()

from bench.talking import loopback_bench_config  # noqa: E402
from livehuman_site.conf import DEFAULTS  # noqa: E402
from realtime.conversation import TurnRows  # noqa: E402
from realtime.session import LiveSession  # noqa: E402
from realtime.vad import EndOfTurn, TurnDetector  # noqa: E402
from testkit.bundles import write_astronaut_bundle  # noqa: E402
from testkit.defaults import conversation_settings, model_pool  # noqa: E402
from testkit.peers import Received, spy_first_pts  # noqa: E402
from testkit.speech import (  # noqa: E402
    SENTENCES,
    SpeechSynthesizer,
    word_error_rate,
)
from testkit.voice import Recorder, TalkingPeer  # noqa: E402

FPS = 25
QUESTIONS = [
    *SENTENCES,
    "Turn on the lights in the living room.",
    "How long does it take to walk to the station?",
    "Tell me a story about the moon.",
    "Is it going to rain tomorrow morning?",
]
AUDIO_RATE = 48_000
VIDEO_CLOCK = 90_000
SILENT_RMS = 30  # the avatar's silence decodes near 0; its speech is far above


class TimedRecorder(Recorder):
    """Also notes when each turn was stored (loop time): with its asr_ms, that dates the end of turn."""

    def __init__(self) -> None:
        super().__init__()
        self.stored_at: list[float] = []

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        self.stored_at.append(asyncio.get_running_loop().time())
        return await super().start_turn(text, asr_ms)


@dataclass
class Turn:
    vad_ms: float
    vad_decision_ms: float  # of vad_ms: the detector's own delay on the clean audio; the rest is the way in
    asr_ms: float
    llm_ms: float
    tts_ms: float
    frame_ms: float
    audio_transport_ms: float
    video_transport_ms: float
    wer: float

    @property
    def to_audio_ms(self) -> float:
        return self.vad_ms + self.asr_ms + self.llm_ms + self.tts_ms + self.frame_ms + self.audio_transport_ms

    @property
    def to_video_ms(self) -> float:
        return self.vad_ms + self.asr_ms + self.llm_ms + self.tts_ms + self.frame_ms + self.video_transport_ms


def vad_decision_ms(utterance) -> float:
    """End of speech → end of turn on the utterance's own 16 kHz samples: the VAD's share without the uplink."""
    detector = TurnDetector(silence_ms=DEFAULTS["VAD_SILENCE_MS"], min_speech_ms=DEFAULTS["VAD_MIN_SPEECH_MS"])
    ends = [event for chunk in utterance.chunks() for event in detector.feed(chunk) if isinstance(event, EndOfTurn)]
    return (ends[0].at_s - utterance.speech_end_s) * 1000


def first_arrival(frames: list[Received], first_pts: int, rate: int, at: float, *, voiced: bool) -> float:
    """Arrival (loop time) of the first received frame stamped at or after session-clock time ``at``."""
    for frame in frames:
        stamped = (frame.pts + first_pts) / rate
        if stamped >= at - 0.01 and (not voiced or _rms(frame) >= SILENT_RMS):
            return frame.arrived
    raise RuntimeError(f"no frame stamped after {at:.3f} s arrived")


def _rms(frame: Received) -> float:
    return float((frame.data.astype(float) ** 2).mean() ** 0.5)


async def open_call(bundle: Path) -> tuple[LiveSession, TalkingPeer, TimedRecorder, dict[str, int]]:
    config = loopback_bench_config(bundle, conversation=conversation_settings())
    events = TimedRecorder()
    live = await LiveSession.open(config, model_pool(device="cpu"), events)
    first_pts = spy_first_pts(live)
    client = TalkingPeer()
    await client.accept(await live.accept_offer(await client.offer()))
    async with asyncio.timeout(10):
        while len(client.video) < 5 or len(client.audio) < 10:
            await asyncio.sleep(0.01)
    await asyncio.sleep(2.0)  # the ASR and VAD models finish loading
    return live, client, events, first_pts


async def one_turn(
    live: LiveSession, client: TalkingPeer, events: TimedRecorder, first_pts: dict[str, int], question: str, speech
) -> Turn:
    loop = asyncio.get_running_loop()
    turns_before = len(events.turns)
    utterance = speech(question, lead_s=0.3, tail_s=0.4)
    spoken = await client.say(utterance)
    async with asyncio.timeout(30):
        while len(events.turns) == turns_before:
            await asyncio.sleep(0.01)
    answer_id = 2 * len(events.turns)
    _, timings = await events.wait_for("finished", lambda mid, t: mid == answer_id, timeout=30)
    await asyncio.sleep(0.3)  # the last packets reach the client
    offset = loop.time() - live.clock.now()  # loop time of the session clock's zero
    text, asr_ms = events.turns[-1]
    end_of_turn = events.stored_at[-1] - asr_ms / 1000  # loop time
    on_air = end_of_turn - offset + timings.first_frame_ms / 1000  # session clock
    audio_at = first_arrival(client.audio, first_pts["audio"], AUDIO_RATE, on_air, voiced=True)
    video_at = first_arrival(client.video, first_pts["video"], VIDEO_CLOCK, on_air - 0.5 / FPS, voiced=False)
    on_air_loop = on_air + offset
    return Turn(
        vad_ms=(end_of_turn - spoken.voice_end) * 1000,
        vad_decision_ms=vad_decision_ms(utterance),
        asr_ms=timings.asr_ms,
        llm_ms=timings.llm_first_token_ms - timings.asr_ms,
        tts_ms=timings.tts_first_audio_ms - timings.llm_first_token_ms,
        frame_ms=timings.first_frame_ms - timings.tts_first_audio_ms,
        audio_transport_ms=(audio_at - on_air_loop) * 1000,
        video_transport_ms=(video_at - on_air_loop) * 1000,
        wer=word_error_rate(question, text),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(turns: list[Turn]) -> None:
    to_audio = [t.to_audio_ms for t in turns]
    to_video = [t.to_video_ms for t in turns]
    print(f"\n{len(turns)} turns; mean WER {statistics.mean(t.wer for t in turns):.3f}")
    print(
        f"voice end → first audio packet at the client: p50 {percentile(to_audio, 0.5):.0f} ms, "
        f"p95 {percentile(to_audio, 0.95):.0f} ms"
    )
    print(
        f"voice end → first video frame at the client:  p50 {percentile(to_video, 0.5):.0f} ms, "
        f"p95 {percentile(to_video, 0.95):.0f} ms"
    )
    total = statistics.mean(to_audio)
    stages = [
        ("VAD end of turn", "vad_ms", 300),
        ("  VAD decision", "vad_decision_ms", None),
        ("ASR tail", "asr_ms", 150),
        ("LLM first token", "llm_ms", None),
        ("TTS first audio", "tts_ms", 200),
        ("first frame", "frame_ms", 80),
        ("transport (audio)", "audio_transport_ms", 100),
        ("transport (video)", "video_transport_ms", 100),
    ]
    print(f"{'stage':<20}{'p50 ms':>8}{'p95 ms':>8}{'share':>8}{'budget':>8}")
    for name, field, budget in stages:
        values = [getattr(t, field) for t in turns]
        share = "" if field == "video_transport_ms" else f"{100 * statistics.mean(values) / total:.0f} %"
        print(
            f"{name:<20}{percentile(values, 0.5):>8.0f}{percentile(values, 0.95):>8.0f}{share:>8}"
            f"{budget if budget is not None else '–':>8}"
        )


async def main(args: argparse.Namespace) -> None:
    speech = SpeechSynthesizer()
    with tempfile.TemporaryDirectory() as tmp:
        live, client, events, first_pts = await open_call(write_astronaut_bundle(Path(tmp) / "still", frame_count=1))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes skew the numbers)")
        turns = []
        try:
            # Not counted: the first answer of a process also pays for onnxruntime's first Piper run.
            await one_turn(live, client, events, first_pts, "Hello there.", speech)
            for index in range(args.turns):
                question = QUESTIONS[index % len(QUESTIONS)]
                turn = await one_turn(live, client, events, first_pts, question, speech)
                turns.append(turn)
                print(
                    f"turn {index + 1:>2}: audio {turn.to_audio_ms:5.0f} ms, video {turn.to_video_ms:5.0f} ms "
                    f"(VAD {turn.vad_ms:.0f}, ASR {turn.asr_ms:.0f}, LLM {turn.llm_ms:.0f}, TTS {turn.tts_ms:.0f}, "
                    f"frame {turn.frame_ms:.0f}, net {turn.audio_transport_ms:.0f}/{turn.video_transport_ms:.0f}) "
                    f"WER {turn.wer:.2f}"
                )
                await asyncio.sleep(0.3)
        finally:
            await client.close()
            await live.close()
        report(turns)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
