"""End-of-turn detection with silero-vad on synthesised speech with silence around it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from realtime.vad import EndOfTurn, SileroModel, SpeechStarted, TurnDetector

START_TOLERANCE_S = 0.1
END_SLACK_S = 0.15  # beyond the silence window: silero's own tail plus one 32-ms window of rounding


def run(detector: TurnDetector, samples: np.ndarray) -> list:
    events = []
    for start in range(0, len(samples), 320):  # 20 ms chunks, as the mic track delivers them
        events += detector.feed(samples[start : start + 320])
    return events


@pytest.mark.parametrize(
    "sentence", ["What is the weather like in Paris today?", "I would like to book a table for two people tonight."]
)
def test_one_turn_starts_near_the_speech_and_ends_within_the_silence_window(speech, sentence):
    utterance = speech(sentence, lead_s=0.6, tail_s=1.0)
    detector = TurnDetector(silence_ms=300, min_speech_ms=250)
    events = run(detector, utterance.samples)
    assert [type(event) for event in events] == [SpeechStarted, EndOfTurn], events
    started, ended = events
    assert abs(started.speech_start_s - utterance.speech_start_s) <= START_TOLERANCE_S
    assert started.at_s - started.speech_start_s == pytest.approx(0.25, abs=0.04)  # announced after min speech
    latency = ended.at_s - utterance.speech_end_s
    print(f"{sentence!r}: end of turn {latency * 1000:.0f} ms after the speech ended")
    assert 0.25 <= latency <= 0.3 + END_SLACK_S
    assert abs(ended.speech_end_s - utterance.speech_end_s) <= END_SLACK_S
    assert not detector.speaking


def test_silence_window_and_min_speech_are_honoured(speech):
    utterance = speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=1.2)
    detector = TurnDetector(silence_ms=700, min_speech_ms=100)
    started, ended = run(detector, utterance.samples)
    assert started.at_s - started.speech_start_s == pytest.approx(0.1, abs=0.04)
    assert 0.65 <= ended.at_s - utterance.speech_end_s <= 0.7 + END_SLACK_S


def test_two_sentences_apart_are_two_turns(speech):
    first = speech("Turn on the lights.", lead_s=0.4, tail_s=0.0)
    second = speech("Thank you very much.", lead_s=0.8, tail_s=0.8)
    events = run(TurnDetector(silence_ms=300, min_speech_ms=250), np.concatenate([first.samples, second.samples]))
    assert [type(event) for event in events] == [SpeechStarted, EndOfTurn, SpeechStarted, EndOfTurn]
    assert events[2].speech_start_s == pytest.approx(first.duration_s + second.speech_start_s, abs=START_TOLERANCE_S)


def test_a_sound_shorter_than_min_speech_is_not_a_turn(speech):
    word = speech("Yes.", lead_s=0.0, tail_s=0.0)
    voiced = word.samples[int(word.speech_start_s * 16000) :][: int(0.12 * 16000)]
    samples = np.concatenate([np.zeros(8000, np.int16), voiced, np.zeros(16000, np.int16)])
    assert run(TurnDetector(silence_ms=300, min_speech_ms=250), samples) == []
    # The same sound counts once the minimum is below its length.
    assert [type(e) for e in run(TurnDetector(silence_ms=300, min_speech_ms=32), samples)] == [SpeechStarted, EndOfTurn]


@pytest.mark.parametrize("level", [0, 300, 3000])
def test_silence_and_noise_are_not_speech(level):
    rng = np.random.default_rng(level)
    noise = np.clip(rng.normal(0, level, 16000 * 4), -32768, 32767).astype(np.int16)
    detector = TurnDetector(silence_ms=300, min_speech_ms=250)
    assert run(detector, noise) == []
    assert not detector.speaking


def test_sessions_share_one_model_but_not_their_state(speech):
    utterance = speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=0.8)
    quiet, talking = (TurnDetector(silence_ms=300, min_speech_ms=250) for _ in range(2))
    assert quiet._model is talking._model is SileroModel.shared()
    events = []
    for start in range(0, len(utterance.samples), 320):
        assert quiet.feed(np.zeros(320, np.int16)) == []
        events += talking.feed(utterance.samples[start : start + 320])
    assert [type(event) for event in events] == [SpeechStarted, EndOfTurn]


def test_reset_starts_a_new_stream(speech):
    utterance = speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=0.8)
    detector = TurnDetector(silence_ms=300, min_speech_ms=250)
    half = len(utterance.samples) // 2
    run(detector, utterance.samples[:half])
    assert detector.speaking
    detector.reset()
    assert not detector.speaking
    first = run(detector, utterance.samples)
    assert first[0].speech_start_s == pytest.approx(utterance.speech_start_s, abs=START_TOLERANCE_S)


@pytest.mark.slow
def test_importing_silero_leaves_torch_threads_alone():
    # silero_vad sets torch to one thread when first imported: only a fresh process shows whether that leaks.
    code = (
        "import django, torch; django.setup(); torch.set_num_threads(2); "
        "from realtime.vad import SileroModel; SileroModel.shared(); print(torch.get_num_threads())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "livehuman_site.settings"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split()[-1] == "2"
