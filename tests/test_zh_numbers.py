"""Numbers in Chinese text read as Chinese words, and what a Chinese voice is actually given to read."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.conversation.spoken import MeasuredTTS, SentenceDurations
from realtime.engines.tts.base import PCM, TTSEngine, VoiceSettings
from realtime.text.read_aloud import read_aloud
from realtime.text.zh_numbers import read_numbers_zh


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("今天是2026年11月29日", "今天是二零二六年十一月二十九日"),
        ("日期2026-11-29到了", "日期二零二六年十一月二十九日到了"),
        ("增长了35%", "增长了百分之三十五"),
        ("下降-2.5%", "下降负百分之二点五"),
        ("温度-3.5℃", "温度负三点五摄氏度"),
        ("3:30开会，12:05结束", "三点三十分开会，十二点零五分结束"),
        ("价格1,234.5元", "价格一千二百三十四点五元"),
        ("我有2个苹果", "我有两个苹果"),
        ("第2名", "第二名"),
        ("3~5天", "三到五天"),
        ("1/2的人", "二分之一的人"),
        ("电话13800138000", "电话一三八零零一三八零零零"),
        ("号码007", "号码零零七"),
        ("版本1.2.3发布", "版本一点二点三发布"),
        ("圆周率3.14", "圆周率三点一四"),
    ],
)
def test_numbers_dates_and_percentages_are_read_as_chinese_words(written, spoken):
    assert read_numbers_zh(written) == spoken


@pytest.mark.parametrize(
    "untouched",
    ["COVID-19", "v1.2.3", "https://example.com/2026/11?page=2", "www.a.cn/3", "a1@b2.com", "mp3", "3D", "B2B"],
)
def test_digits_inside_latin_words_urls_and_addresses_are_left_as_written(untouched):
    assert read_numbers_zh(f"请看{untouched}。") == f"请看{untouched}。"


def test_english_voices_get_the_text_unchanged_and_chinese_voices_get_words():
    assert read_aloud("It is 35% at 3:30.", "en") == "It is 35% at 3:30."
    assert read_aloud("下午3:30", "zh") == "下午三点三十分"


CHINESE = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=4)
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**12).map(str),
    st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False).map(str),
    st.integers(0, 100).map(lambda n: f"{n}%"),
    st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
    st.times().map(lambda t: f"{t.hour}:{t.minute:02d}"),
)
LATIN = st.sampled_from(["Python", "COVID-19", "iPhone", "https://a.cn/x1?y=2", "v2.0.1", "OK"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(CHINESE, st.one_of(NUMBERS, LATIN)), min_size=1, max_size=8))
def test_every_number_between_chinese_words_is_spelled_out_and_nothing_else_changes(parts):
    text = "".join(words + token for words, token in parts)
    spoken = read_numbers_zh(text)
    latin = [token for _, token in parts if re.search("[A-Za-z]", token)]
    # The Chinese words and Latin tokens survive in order; every digit outside a Latin token is gone.
    remaining = spoken
    for words, token in parts:
        at = remaining.index(words)
        remaining = remaining[at + len(words) :]
        if token in latin:
            assert remaining.startswith(token)
    without_latin = spoken
    for token in latin:
        without_latin = without_latin.replace(token, "")
    assert not re.search(r"[0-9%]", without_latin), spoken
    assert read_numbers_zh(spoken) == spoken  # spelling out is done once and for all


class RecordingTTS(TTSEngine):
    def __init__(self, language: str) -> None:
        super().__init__(VoiceSettings(language=language))
        self.texts: list[str] = []

    async def synthesize(self, text: str):
        self.texts.append(text)
        yield PCM(np.zeros(1600, np.int16), 16_000)


async def test_a_chinese_voice_is_given_words_while_the_sentence_is_remembered_as_written():
    engine, durations = RecordingTTS("zh-CN"), SentenceDurations()
    [_ async for _ in MeasuredTTS(engine, durations).synthesize("涨了35%。")]
    assert engine.texts == ["涨了百分之三十五。"]
    assert durations.get("涨了35%。") == pytest.approx(0.1)  # the spoken-text record holds the written sentence
