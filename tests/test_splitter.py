"""SentenceSplitter: invariants under hypothesis, and the cuts a listener expects in English and Chinese."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.text import SentenceSplitter, split_text
from realtime.text.splitter import CJK_WEIGHT, spoken_length

# Arbitrary text: letters, digits, every mark the splitter treats specially, closers, CJK and odd whitespace.
ANY_TEXT = st.lists(
    st.sampled_from([*"abcXYZ019 .,!?;:…。！？；，、：\"')”」  \n\t你好世界中文。", "Dr", "e.g", "U.S", "Mr"]),
    max_size=250,
).map("".join)
# Realistic text: words no longer than 10 characters separated by whitespace, so the max bound must always hold.
WORDS = st.sampled_from(
    [
        "hello", "world,", "end.", "Dr.", "e.g.", "U.S.", "3.14", "1,000", "12:30", "well...", "wait…", "why?",
        "yes!", "no;", "(see)", '"quoted."', "你好，", "今天天气很好。", "我们", "去公园", "散步吧？", "好的……",
        "“对！”", "a", "I", "extraordinarily",
    ]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", " \n "])


@st.composite
def worded_text(draw) -> str:
    words = draw(st.lists(WORDS, max_size=120))
    return "".join(word + draw(SEPARATORS) for word in words)


@st.composite
def bounds(draw) -> dict[str, int]:
    min_chars = draw(st.integers(1, 10))
    first = draw(st.integers(min_chars, 30))
    # Room for a whole word plus its whitespace between min and max, so a cut without splitting a word exists
    # (spoken lengths: "今天天气很好。" is 19).
    max_chars = draw(st.integers(max(first, min_chars + 22), 150))
    return {"min_chars": min_chars, "first_chunk_chars": first, "max_chars": max_chars}


def stream(pieces: list[str], **options: int) -> list[str]:
    splitter = SentenceSplitter(**options)
    chunks = []
    for piece in pieces:
        chunks += splitter.feed(piece)
    return chunks + splitter.flush()


def cut(text: str, points: list[int]) -> list[str]:
    edges = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(edges)]


def starts_a_space_run_in(content: str, first: int, last: int) -> bool:
    return any(content[k].isspace() and not content[k - 1].isspace() for k in range(max(first, 1), last + 1))


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT, options=bounds())
def test_chunks_join_to_the_input_and_none_is_blank(text, options):
    chunks = split_text(text, **options)
    if text.strip():
        assert "".join(chunks) == text
    else:
        assert chunks == []
    assert all(chunk.strip() for chunk in chunks)


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT, points=st.lists(st.integers(0, 10_000), max_size=30), options=bounds())
def test_streaming_in_any_pieces_gives_the_same_chunks(text, points, options):
    assert stream(cut(text, points), **options) == split_text(text, **options)


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT, options=bounds())
def test_a_chunk_is_too_long_only_when_no_word_boundary_could_cut_it(text, options):
    for chunk in split_text(text, **options):
        content = chunk.strip()
        if spoken_length(content) > options["max_chars"]:
            assert not starts_a_space_run_in(content, options["min_chars"], options["max_chars"]), chunk


@settings(max_examples=300, deadline=None)
@given(text=worded_text(), points=st.lists(st.integers(0, 10_000), max_size=20), options=bounds())
def test_bounds_hold_on_worded_text(text, points, options):
    chunks = stream(cut(text, points), **options)
    assert "".join(chunks) == text or not text.strip()
    assert all(spoken_length(chunk.strip()) <= options["max_chars"] for chunk in chunks)
    assert all(spoken_length(chunk.strip()) >= options["min_chars"] for chunk in chunks[:-1])


def test_english_sentences_keep_decimals_abbreviations_and_ellipses():
    expected = [
        "Dr. Smith paid 3.14 dollars for the U.S. stamps, e.g. the blue ones. ",
        "Well... maybe not! ",
        "Was it Mr. J. Doe? ",
        "Yes.",
    ]
    assert split_text("".join(expected), first_chunk_chars=60) == expected


def test_chinese_sentences_break_at_full_width_marks_with_their_closing_quotes():
    text = "你好！今天天气很好。他说：“我们去公园散步吧？”好的……走吧；明天见"
    # "你好！" is as long to say as "Hello!": a sentence of its own, not joined to the next (spoken lengths)
    assert split_text(text) == ["你好！", "今天天气很好。", "他说：“我们去公园散步吧？”", "好的……", "走吧；", "明天见"]
    assert split_text(text, min_chars=12, first_chunk_chars=12) == [
        "你好！今天天气很好。",
        "他说：“我们去公园散步吧？”",
        "好的……走吧；",
        "明天见",
    ]


def test_a_short_sentence_joins_the_next():
    assert split_text("Hi. How are you today? Ok.") == ["Hi. How are you today? ", "Ok."]


def test_first_chunk_is_released_at_the_first_clause_break_once_long_enough():
    # A word or two before the first comma is enough, in either language (a TTS voice says it in a fraction of
    # the time the sentence takes); a single short word ("Well,") waits for the next clause.
    assert split_text("Hello, and welcome to the live demo. I can help.") == [
        "Hello, ",
        "and welcome to the live demo. ",
        "I can help.",
    ]
    text = "Well, I think the weather is lovely today, and we should go for a walk by the river."
    assert split_text(text) == [
        "Well, I think the weather is lovely today, ",
        "and we should go for a walk by the river.",
    ]
    assert split_text("好的，我来帮你查一下明天北京的天气，请稍等一会儿。") == [
        "好的，",
        "我来帮你查一下明天北京的天气，请稍等一会儿。",
    ]
    assert split_text("当然可以，我们的营业时间是每天早上九点到晚上十点。")[0] == "当然可以，"
    assert split_text("好的，我来帮你查一下明天北京的天气，请稍等一会儿。", first_chunk_chars=12) == [
        "好的，我来帮你查一下明天北京的天气，",
        "请稍等一会儿。",
    ]


def test_first_chunk_is_released_before_the_sentence_ends_while_streaming():
    splitter = SentenceSplitter(first_chunk_chars=12)
    assert splitter.feed("Sure thing, here is") == []
    assert splitter.feed(" what I found, and") == ["Sure thing, here is what I found, "]
    assert splitter.feed(" more, and more.") == []  # later clause breaks wait for the sentence end
    assert splitter.flush() == ["and more, and more."]


def test_a_long_sentence_is_cut_at_a_clause_or_space_never_inside_a_word():
    words = " ".join(f"word{i}" for i in range(60)) + "."
    chunks = split_text(words, max_chars=50)
    assert len(chunks) > 1
    assert all(len(chunk.strip()) <= 50 for chunk in chunks)
    assert all(chunk.endswith(" ") for chunk in chunks[:-1])


def test_long_chinese_without_punctuation_is_cut_between_characters():
    text = "这是一段很长的没有标点的中文" * 12
    chunks = split_text(text, max_chars=40)
    assert "".join(chunks) == text
    assert [len(chunk) for chunk in chunks[:-1]] == [40 // CJK_WEIGHT] * (len(chunks) - 1)  # spoken: 13 syllables


def test_an_unbreakable_token_longer_than_max_stays_whole():
    token = "x" * 200
    assert split_text(f"Look at {token} now.", max_chars=50) == ["Look at ", f"{token} ", "now."]


def test_a_sentence_end_waits_for_the_next_word_to_decide():
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("50 dollars. Next") == ["It costs 3.50 dollars. "]


def test_flush_starts_a_new_stream_with_an_early_first_chunk():
    splitter = SentenceSplitter()
    splitter.feed("First answer, with a clause.")
    splitter.flush()
    assert splitter.feed("Second answer here, and") == ["Second answer here, "]


@pytest.mark.parametrize("options", [{"min_chars": 0}, {"min_chars": 20, "first_chunk_chars": 12}, {"max_chars": 5}])
def test_inconsistent_bounds_are_refused(options):
    with pytest.raises(ValueError):
        SentenceSplitter(**options)


# --- Chinese text with numbers, Latin words and URLs ----------------------------------------------------------

# Tokens no chunk may end inside (a break inside one would be read as two words, or lose the rest of a URL).
ATOMS = st.sampled_from(
    ["3.14", "1,000", "2026-11-29", "12:30", "35%", "-2.5", "Python", "LiveHuman", "https://example.com/a.b?c=1,2"]
)
ZH_WORDS = st.sampled_from(["你好", "今天", "天气很好", "我们", "去公园", "散步", "数字人"])
ZH_ENDS = "。！？；…"
ZH_MARKS = st.sampled_from([*ZH_ENDS, "……", "，", "、", "：", ""])


@st.composite
def chinese_text(draw) -> tuple[str, set[int]]:
    """Chinese sentences with atoms inside; returns the text and the positions strictly inside an atom."""
    text, inside = "", set()
    for _ in range(draw(st.integers(1, 25))):
        text += draw(ZH_WORDS)
        if draw(st.booleans()):
            atom = draw(ATOMS)
            inside |= set(range(len(text) + 1, len(text) + len(atom)))
            text += atom + draw(ZH_WORDS)
        text += draw(ZH_MARKS)
    return text, inside


def sentence_ends(text: str) -> list[str]:
    """The text cut after every run of full-width sentence marks (what a listener hears as sentences)."""
    return [piece for piece in re.split(f"(?<=[{ZH_ENDS}])(?![{ZH_ENDS}])", text) if piece]


@settings(max_examples=300, deadline=None)
@given(sample=chinese_text(), points=st.lists(st.integers(0, 10_000), max_size=20), options=bounds())
def test_chinese_chunks_never_end_inside_a_number_latin_word_or_url(sample, points, options):
    text, inside = sample
    chunks = stream(cut(text, points), **options)
    assert "".join(chunks) == text
    ends = set(itertools.accumulate(len(chunk) for chunk in chunks))
    assert not ends & inside, chunks


@settings(max_examples=300, deadline=None)
@given(sample=chinese_text())
def test_chinese_is_cut_at_every_full_width_sentence_end(sample):
    text, _ = sample
    # No early first chunk and no length limit in play: the cuts are exactly the sentence ends.
    assert split_text(text, min_chars=1, first_chunk_chars=10_000, max_chars=10_000) == sentence_ends(text)


@settings(max_examples=200, deadline=None)
@given(sample=chinese_text())
def test_the_first_chinese_chunk_ends_early_at_a_comma(sample):
    text, _ = sample
    first = split_text(text, min_chars=1, first_chunk_chars=4)[0]
    sentence = sentence_ends(text)[0]
    commas = [i + 1 for i, ch in enumerate(sentence) if ch in "，、：" and spoken_length(sentence[: i + 1]) >= 4]
    assert first == sentence[: commas[0]] if commas else first == sentence
