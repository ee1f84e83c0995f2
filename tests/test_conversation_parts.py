"""The conversation's parts on their own: mic resampling, turn taking over real VAD, answers, spoken text, gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.clock import SessionClock
from realtime.conversation.answers import FIRST_CHUNK_MAX_CHARS, AnswerChunks, Answerer
from realtime.conversation.apology import apology
from realtime.conversation.gate import RELEASE_TAIL_S, TalkGate, may_barge_in
from realtime.conversation.history import History
from realtime.conversation.listening import PRE_ROLL_S, Listener, Recogniser
from realtime.conversation.mic import CHUNK_SAMPLES, MicResampler
from realtime.conversation.settings import BargeIn, TalkMode
from realtime.conversation.spoken import MeasuredTTS, SentenceDurations, SpokenText, cut_text
from realtime.engines.asr.base import ASREngine, ASRError
from realtime.engines.llm.base import LLMEngine, LLMError, LLMErrorCode
from realtime.engines.llm.echo import EchoLLM
from realtime.engines.tts.base import PCM, TTSEngine, VoiceSettings
from realtime.pipeline import TaskOwner
from realtime.text.splitter import CJK_WEIGHT, split_text, spoken_length
from realtime.vad import TurnDetector
from testkit.defaults import llm_settings
from testkit.waits import until

# --- spoken text ---------------------------------------------------------------------------------------------


def test_cut_text_keeps_whole_words_and_cuts_chinese_between_characters():
    text = "The quick brown fox jumps. "
    assert cut_text(text, 1.0) == text
    assert cut_text(text, 0.0) == ""
    assert cut_text(text, 0.5) == "The quick "  # 13 characters in: inside "brown", so back to the word before
    assert cut_text(text, 10 / len(text)) == "The quick "  # exactly at the space
    assert cut_text("你好，世界。今天天气很好。", 0.5) == "你好，世界。"
    assert cut_text("Supercalifragilistic", 0.9) == ""  # no whole word was spoken yet


def test_spoken_text_is_every_aired_sentence_and_the_played_share_of_the_last():
    durations = SentenceDurations()
    durations.set("Hello there, friend. ", 2.0)
    durations.set("The weather is fine today. ", 4.0)
    spoken = SpokenText()
    for chunk in ("Hello there, friend. ", "The weather is fine today. ", "Goodbye."):
        spoken.queue(chunk)
    assert spoken.until(5.0, durations.get) == ""  # nothing on air yet
    spoken.on_air("Hello there, friend. ", 1.0)
    spoken.on_air("The weather is fine today. ", 3.0)
    assert spoken.full() == "Hello there, friend. The weather is fine today. Goodbye."
    assert spoken.until(5.0, durations.get) == "Hello there, friend. The weather"  # half: 13 of 27 characters
    assert spoken.until(9.0, durations.get) == "Hello there, friend. The weather is fine today."
    assert SpokenText(aired=[("Unknown length. ", 0.0)]).until(0.1, durations.get) == "Unknown length."


class ToneTTS(TTSEngine):
    def __init__(self) -> None:
        super().__init__(VoiceSettings())
        self.closed = False

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        try:
            for _ in range(len(text)):
                yield PCM(np.full(2205, 1000, np.int16), 22_050)  # 0.1 s a character
        finally:
            self.closed = True


async def test_measured_tts_passes_audio_through_and_notes_each_sentences_length():
    durations = SentenceDurations()
    engine = ToneTTS()
    pieces = [pcm async for pcm in MeasuredTTS(engine, durations).synthesize("abcd")]
    assert len(pieces) == 4 and all(p.sample_rate == 22_050 and p.samples[0] == 1000 for p in pieces)
    assert durations.get("abcd") == pytest.approx(0.4)
    assert durations.get("other") is None
    stream = MeasuredTTS(engine, durations).synthesize("abcdefgh")
    await anext(stream)
    await stream.aclose()  # an interrupt closes the wrapper: the engine's stream is closed with it
    assert engine.closed and durations.get("abcdefgh") == pytest.approx(0.1)


# --- history, apology, gate ----------------------------------------------------------------------------------


def test_history_keeps_what_was_said_and_corrects_an_interrupted_answer():
    history = History()
    history.add_user("Hi")
    history.set_assistant(1, "Hello! How are you today?")
    history.add_user("Fine")
    history.set_assistant(2, "")  # cut before a word was spoken: not part of the conversation
    history.set_assistant(1, "Hello!")  # the interrupt's correction keeps its place
    assert history.messages() == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Fine"},
    ]
    history.set_assistant(1, "")
    assert [m["role"] for m in history.messages()] == ["user", "user"]


def test_apology_in_the_roles_language():
    assert "抱歉" in apology("zh") and apology("zh-CN") == apology("zh_hans") == apology("zh")
    assert apology("en").startswith("Sorry") and apology("en-US") == apology("en")
    assert apology("fr") == apology("en")  # no French apology: English rather than silence


def test_talk_gate_push_to_talk_admits_audio_only_while_held_and_a_short_tail():
    gate = TalkGate(TalkMode.HANDS_FREE)
    assert gate.admits(0.0)
    gate.set_mode(TalkMode.PUSH)
    assert not gate.admits(1.0)
    gate.press()
    assert gate.admits(2.0)
    gate.release(3.0)
    assert gate.admits(3.0 + RELEASE_TAIL_S / 2) and not gate.admits(3.0 + RELEASE_TAIL_S)
    gate.release(10.0)  # a second release (pointerleave) does not reopen the tail
    assert not gate.admits(10.0)


@pytest.mark.parametrize(
    ("policy", "mode", "allowed"),
    [
        (BargeIn.ALWAYS, TalkMode.HANDS_FREE, True),
        (BargeIn.ALWAYS, TalkMode.PUSH, True),
        (BargeIn.PUSH_TO_TALK, TalkMode.HANDS_FREE, False),
        (BargeIn.PUSH_TO_TALK, TalkMode.PUSH, True),
    ],
)
def test_barge_in_policy(policy, mode, allowed):
    assert may_barge_in(policy, mode) is allowed


# --- mic -----------------------------------------------------------------------------------------------------


def test_mic_resampler_turns_48k_stereo_frames_into_clean_16k_20ms_chunks():
    t = np.arange(48_000) / 48_000
    tone = (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
    resampler = MicResampler()
    chunks = []
    for start in range(0, len(tone), 960):
        stereo = np.repeat(tone[start : start + 960], 2).reshape(1, -1)  # packed s16 stereo, as opus decodes
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.pts = start
        chunks += resampler.push(frame)
    assert all(len(chunk) == CHUNK_SAMPLES and chunk.dtype == np.int16 for chunk in chunks)
    audio = np.concatenate(chunks)
    assert abs(len(audio) - 16_000) <= CHUNK_SAMPLES  # one second, less the resampler's delay
    spectrum = np.abs(np.fft.rfft(audio[1000:9000].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16_000 / 8000 - 440) <= 2  # the same pitch: the rate really changed
    steady = audio[1000:-1000].astype(np.float64)
    assert np.abs(np.diff(steady)).max() < 2 * 10_000 * 2 * np.pi * 440 / 16_000  # no clicks at frame edges


# --- turn taking over the real VAD ---------------------------------------------------------------------------


class RecordingASR(ASREngine):
    """Keeps the audio of each utterance; its "transcript" says how many samples it got."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.utterances: list[list[np.ndarray]] = []
        self.fail_after = fail_after
        self.resets = 0

    def start(self) -> None:
        self.utterances.append([])

    async def accept(self, pcm16k: np.ndarray) -> str | None:
        self.utterances[-1].append(pcm16k)
        if self.fail_after is not None and len(self.utterances[-1]) > self.fail_after:
            raise ASRError("decoder crashed")
        count = sum(map(len, self.utterances[-1]))
        return f"{count} samples" if len(self.utterances[-1]) % 10 == 0 else None

    async def finish(self) -> str:
        await asyncio.sleep(0.01)
        return f"{sum(map(len, self.utterances[-1]))} samples"

    def reset(self) -> None:
        self.resets += 1


class TurnLog:
    def __init__(self) -> None:
        self.partials: list[str] = []
        self.finals: list[tuple[str, float, int]] = []
        self.errors: list[ASRError] = []
        self.starts = 0
        self.ends = 0
        self.accept = True

    def partial(self, text: str) -> None:
        self.partials.append(text)

    async def final(self, text: str, ended_at: float, asr_ms: int) -> None:
        self.finals.append((text, ended_at, asr_ms))

    def failed(self, error: ASRError) -> None:
        self.errors.append(error)

    async def on_speech(self) -> bool:
        self.starts += 1
        return self.accept

    def on_end(self) -> None:
        self.ends += 1


async def hear(utterance_chunks, asr: ASREngine, log: TurnLog, *, pause_after: int | None = None):
    clock = SessionClock()
    recogniser = Recogniser(asr, clock, log)
    task = asyncio.create_task(recogniser.run())
    listener = Listener(
        TurnDetector(silence_ms=300, min_speech_ms=250), recogniser, clock, on_speech=log.on_speech, on_end=log.on_end
    )
    for index, chunk in enumerate(utterance_chunks):
        if index == pause_after:
            listener.pause()
            break
        await listener.feed(chunk)
    await until(lambda: len(log.finals) == log.ends, what="the recogniser to finish every turn that ended")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_turn_reaches_the_asr_from_just_before_the_speech_to_the_end_of_turn(speech):
    utterance = speech("What is the weather like in Paris today?", lead_s=1.0, tail_s=1.0)
    asr, log = RecordingASR(), TurnLog()
    await hear(utterance.chunks(), asr, log)
    assert (log.starts, log.ends, len(asr.utterances)) == (1, 1, 1)
    heard = len(np.concatenate(asr.utterances[0])) / 16_000
    # from about PRE_ROLL_S before the speech to the end of turn (speech end + silence window + one VAD window)
    started = utterance.speech_end_s + 0.3 - heard
    assert utterance.speech_start_s - PRE_ROLL_S - 0.15 <= started <= utterance.speech_start_s - 0.1
    assert heard <= utterance.speech_end_s - utterance.speech_start_s + PRE_ROLL_S + 0.5
    [(text, _, asr_ms)] = log.finals
    # asr_ms covers the engine's 10-ms finish; how short the tail is, is bench.conversation's "ASR tail" row
    assert text == f"{round(heard * 16_000)} samples" and asr_ms >= 10
    assert log.partials, "partial transcripts come while the user speaks"


async def test_speech_that_is_not_taken_as_a_turn_never_reaches_the_asr(speech):
    asr, log = RecordingASR(), TurnLog()
    log.accept = False  # the avatar has the floor (barge-in not allowed)
    await hear(speech("Turn on the lights.", lead_s=0.5, tail_s=0.8).chunks(), asr, log)
    assert log.starts == 1 and log.ends == 0 and not asr.utterances and not log.finals


async def test_pausing_the_mic_mid_turn_ends_the_turn_there(speech):
    utterance = speech("Please turn off the lights in the kitchen before you go to bed.", lead_s=0.5, tail_s=0.5)
    asr, log = RecordingASR(), TurnLog()
    await hear(utterance.chunks(), asr, log, pause_after=int(2.0 / 0.02))  # released 2 s in, mid-sentence
    assert log.ends == 1 and len(log.finals) == 1
    assert len(np.concatenate(asr.utterances[0])) / 16_000 < 2.0 - 0.5 + PRE_ROLL_S


async def test_an_asr_failure_is_reported_once_and_the_turn_ends_without_text(speech):
    asr, log = RecordingASR(fail_after=5), TurnLog()
    await hear(speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=0.8).chunks(), asr, log)
    assert [str(e) for e in log.errors] == ["decoder crashed"]
    assert asr.resets == 1 and [text for text, _, _ in log.finals] == [""]


# --- answers -------------------------------------------------------------------------------------------------


def stream_chunks(pieces: list[str]) -> list[str]:
    chunks = AnswerChunks()
    return [chunk for piece in pieces for chunk in chunks.feed(piece)] + chunks.flush()


def test_the_first_chunk_is_a_short_sentence_or_the_first_words_of_unpunctuated_text():
    assert stream_chunks(["Tell me about ", "the weather. It is ", "sunny, isn't it?"]) == [
        "Tell me about the weather. ",
        "It is sunny, isn't it?",
    ]
    echoed = "please turn off the lights in the kitchen before you go to bed"  # pocketsphinx: no punctuation
    assert stream_chunks([word + " " for word in echoed.split()]) == [
        "please turn off the lights in ",
        "the kitchen before you go to bed ",
    ]
    chinese = "今天天气很好我们一起去公园散步吧然后去吃饭好不好呀朋友们大家一起来吧"  # no punctuation either
    head = FIRST_CHUNK_MAX_CHARS // CJK_WEIGHT  # characters: each one a syllable
    assert stream_chunks([chinese]) == [chinese[:head], chinese[head:]]
    assert stream_chunks(["turn on the lights"]) == ["turn on the lights"]


@given(st.text(alphabet=st.sampled_from("ab c.,!你好。 \n"), max_size=200), st.lists(st.integers(1, 20), max_size=40))
def test_answer_chunks_join_to_the_text_and_start_short(text, cuts):
    pieces, rest = [], text
    for size in cuts:
        pieces.append(rest[:size])
        rest = rest[size:]
    chunks = stream_chunks([*pieces, rest])
    if text.strip():
        assert "".join(chunks) == text
        assert all(chunk.strip() for chunk in chunks)
        first = chunks[0].strip()
        assert spoken_length(first) <= FIRST_CHUNK_MAX_CHARS or " " not in first.strip()  # one long word may run over
    else:
        assert chunks == []


class RecordingWriter:
    def __init__(self, message_id: int = 7) -> None:
        self.message_id = message_id
        self.chunks: list[str] = []
        self.first_tokens = 0
        self.ended = False

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def first_token(self) -> None:
        self.first_tokens += 1

    async def add(self, text: str) -> None:
        self.chunks.append(text)

    async def end(self) -> None:
        self.ended = True


class ScriptedLLM(LLMEngine):
    """Yields ``pieces`` then raises ``error`` (if any), or hangs after them; records what it was asked."""

    def __init__(self, pieces: list[str], error: LLMError | None = None, hang: bool = False) -> None:
        super().__init__(llm_settings(system_prompt="Be brief."))
        self.pieces, self.error, self.hang = pieces, error, hang
        self.asked: list[list[dict]] = []
        self.closed = asyncio.Event()

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        self.asked.append(messages)
        try:
            for piece in self.pieces:
                await asyncio.sleep(0)
                yield piece
            if self.error:
                raise self.error
            if self.hang:
                await asyncio.sleep(3600)
        finally:
            self.closed.set()


async def answer_with(llm: LLMEngine, history: History, language: str = "en") -> tuple[RecordingWriter, list]:
    errors: list[tuple[str, str]] = []
    owner = TaskOwner()
    answerer = Answerer(llm, history, owner, language=language, on_error=lambda *error: errors.append(error))
    writer = RecordingWriter()
    answerer.answer(writer)
    async with asyncio.timeout(5):
        while not writer.ended:
            await asyncio.sleep(0.01)
    await owner.aclose()
    return writer, errors


async def test_an_answer_is_the_llms_text_in_the_splitters_chunks():
    history = History()
    history.add_user("Tell me about the weather. It is sunny, isn't it? Thanks a lot.")
    writer, errors = await answer_with(EchoLLM(llm_settings()), history)
    assert writer.chunks == split_text("Tell me about the weather. It is sunny, isn't it? Thanks a lot.")
    assert writer.first_tokens > 0 and not errors
    assert history.messages()[-1] == {"role": "assistant", "content": writer.text.strip()}


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_an_llm_failure_drops_the_unfinished_fragment_and_apologises(language):
    history = History()
    history.add_user("hi")
    error = LLMError(LLMErrorCode.BROKEN_STREAM, "connection reset")
    llm = ScriptedLLM(["Certainly. The capital ", "of"], error=error)
    writer, errors = await answer_with(llm, history, language)
    assert writer.chunks == ["Certainly. ", apology(language)]  # "The capital of" was never said
    assert errors == [("llm_broken_stream", "connection reset")]
    assert llm.asked == [[{"role": "user", "content": "hi"}]]


async def test_cancelling_an_answer_closes_the_llm_stream():
    history = History()
    history.add_user("hi")
    llm = ScriptedLLM(["Let me think, ", "about that for a while. "], hang=True)
    owner = TaskOwner()
    answerer = Answerer(llm, history, owner, language="en", on_error=lambda *_: None)
    writer = RecordingWriter()
    answerer.answer(writer)
    async with asyncio.timeout(2):
        while not writer.chunks:
            await asyncio.sleep(0.01)
    await answerer.cancel()
    assert llm.closed.is_set() and not writer.ended
    assert len(owner) == 0


# --- the role's settings, through the session factory --------------------------------------------------------


@pytest.mark.django_db
def test_the_factory_gives_the_conversation_the_roles_engines_prompt_and_language(talking_role, settings):
    from django.core.exceptions import ImproperlyConfigured

    from avatars_app.models import Prompt
    from sessions_app.session_factory import conversation_settings

    talking_role.prompt = Prompt.objects.create(tenant=talking_role.tenant, name="p", system_text="Be the astronaut.")
    talking_role.llm_engine, talking_role.llm_base_url = "dify", "http://dify.local/v1"
    talking_role.llm_model, talking_role.llm_api_key, talking_role.temperature = "app", "app-key", 0.1
    talking_role.language = "zh"
    talking_role.save()
    settings.LIVEHUMAN = {"BARGE_IN": "push_to_talk", "LLM_TIMEOUT_S": "7", "VAD_SILENCE_MS": 240}
    made = conversation_settings(talking_role, session_id="s-1")
    assert (made.asr_engine, made.asr_options, made.llm_engine, made.language) == ("pocketsphinx", {}, "dify", "zh")
    assert made.barge_in is BargeIn.PUSH_TO_TALK and made.vad_silence_ms == 240
    llm = made.llm
    assert (llm.base_url, llm.model, llm.api_key, llm.temperature) == ("http://dify.local/v1", "app", "app-key", 0.1)
    assert (llm.system_prompt, llm.timeout_s, llm.user) == ("Be the astronaut.", 7.0, "s-1")

    settings.LIVEHUMAN = {"BARGE_IN": "sometimes"}
    with pytest.raises(ImproperlyConfigured, match="BARGE_IN must be 'always' or 'push_to_talk'"):
        conversation_settings(talking_role, session_id="s-1")
