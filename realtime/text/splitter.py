"""Cut a stream of LLM text into chunks that TTS can speak one at a time.

The pipeline synthesises each chunk as soon as it is complete, so where a chunk
ends decides latency (a short first chunk gets the avatar talking sooner) and
prosody (a cut at a sentence or clause end sounds natural).

Lengths are *spoken* lengths (``spoken_length``): a Chinese, Japanese or Korean
character is one syllable, about as long to say as three letters of English, so
the bounds mean the same time in both (a first chunk of "Hello," or "你好，").

Invariants, relied on by the pipeline and checked by property tests:

- ``"".join(chunks) == text`` for every text with a non-space character:
  whitespace after a break belongs to the chunk before it, so every chunk but
  the first starts with a non-space character. A stream of only whitespace
  gives no chunks (there is nothing to speak).
- No chunk is empty or whitespace-only.
- ``spoken_length(chunk.strip()) <= max_chars``, except when one unbreakable
  token (a long run of letters with no space) crosses the limit: then the chunk
  runs to the end of that token rather than cutting inside it.
- Every chunk but the last has a spoken length of at least ``min_chars`` (stripped).
- Feeding the text in any pieces gives the same chunks as feeding it at once:
  a break is decided only when the characters that could change the decision
  (the rest of a "?!" cluster, closing quotes, the whitespace and the next
  word) have arrived, or at ``flush``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

# Sentence ends. Full-width ones always end a sentence; the others only when
# followed by whitespace, the end of the text or CJK text ("3.14", "a.m", "?q=").
_FULLWIDTH_ENDS = frozenset("。！？；")
_ENDS = _FULLWIDTH_ENDS | frozenset(".!?;…")
# Clause breaks, used for the early first chunk and to cut long sentences.
_FULLWIDTH_CLAUSES = frozenset("，、：")
_CLAUSES = _FULLWIDTH_CLAUSES | frozenset(",:")
# Closing quotes and brackets stay with the sentence they close.
_CLOSERS = frozenset("\"'”’)]}」』）》】〉")
_OPENERS = "\"'“‘([{「『（《【〈"
# Lower-cased words that end in a period without ending the sentence.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "fig", "approx", "dept", "ca", "cf"}
)
# "U.S", "e.g", "i.e", "a.m" (the final period is the one being judged) and single initials ("J").
_ACRONYM = re.compile(r"[A-Za-z](?:\.[A-Za-z])*")
# Spoken length of one CJK character: a syllable (about 4-5 a second) against letters of English (about 14).
CJK_WEIGHT = 3


def _is_cjk(ch: str) -> bool:
    """Chinese, Japanese or Korean script: no spaces between words, so a chunk may end between two characters."""
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
    )


def spoken_length(text: str) -> int:
    """How long ``text`` takes to say, in letters of English: a CJK character counts ``CJK_WEIGHT``."""
    return len(text) + (CJK_WEIGHT - 1) * sum(map(_is_cjk, text))


def spoken_prefix(text: str, max_length: int) -> str:
    """The longest start of ``text`` whose spoken length is at most ``max_length``."""
    total = 0
    for i, ch in enumerate(text):
        total += CJK_WEIGHT if _is_cjk(ch) else 1
        if total > max_length:
            return text[:i]
    return text


class _Kind(Enum):
    SENTENCE = "sentence"  # after a sentence end or a line break
    CLAUSE = "clause"  # after a comma-like mark
    SPACE = "space"  # after any other whitespace
    CJK = "cjk"  # between two CJK characters


@dataclass(frozen=True)
class _Break:
    """A place where the current chunk could end: ``text[:end]``, its speakable part ``length`` long (spoken)."""

    end: int
    length: int
    kind: _Kind


class _NeedMore:
    """The text so far does not decide the next break; wait for more (or for flush)."""


_NEED_MORE = _NeedMore()


class SentenceSplitter:
    """Turns streamed text into speakable chunks: ``feed`` pieces as they arrive, ``flush`` at the end.

    ``min_chars``: a sentence shorter than this is joined to the next one (TTS
    sounds choppy on "Hi." alone). ``max_chars``: longer sentences are cut at
    a clause break, else a space, else between CJK characters.
    ``first_chunk_chars``: the first chunk may end at a clause break once it
    is this long, so the avatar starts speaking before the first sentence is
    complete: by default at the first clause of a word or two ("Hello,",
    "你好，"), which a TTS engine that synthesises a chunk whole (Piper) voices
    in a fraction of the time the whole sentence takes. All three are spoken
    lengths.
    """

    def __init__(self, *, min_chars: int = 6, max_chars: int = 120, first_chunk_chars: int = 6) -> None:
        if not 1 <= min_chars <= first_chunk_chars <= max_chars:
            raise ValueError("need 1 <= min_chars <= first_chunk_chars <= max_chars")
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.first_chunk_chars = first_chunk_chars
        self._pending = ""
        self._first = True

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the chunks it completes (often none)."""
        self._pending += text
        return self._take_chunks(final=False)

    def flush(self) -> list[str]:
        """End of stream: return the remaining chunks and start over for the next stream."""
        chunks = self._take_chunks(final=True)
        self._pending = ""
        self._first = True
        return chunks

    def _take_chunks(self, *, final: bool) -> list[str]:
        chunks = []
        while (end := self._next_end(final=final)) is not None:
            chunks.append(self._pending[:end])
            self._pending = self._pending[end:]
            self._first = False
        return chunks

    def _next_end(self, *, final: bool) -> int | None:
        """Where the next chunk of the pending text ends, or None until more text (or flush) decides it."""
        text = self._pending
        lead = len(text) - len(text.lstrip())
        if lead == len(text):
            return None  # nothing speakable yet
        too_long = spoken_length(text[lead:].rstrip()) > self.max_chars
        fallbacks: list[_Break] = []
        for brk in _breaks(text, lead, final=final):
            if brk is _NEED_MORE:
                break
            if brk.length > self.max_chars:
                # An unbreakable token (no fallback) ends at its first break, however long.
                return self._best_fallback(fallbacks) or brk.end
            if brk.kind is _Kind.SENTENCE and brk.length >= self.min_chars:
                return brk.end
            if self._first and brk.kind is _Kind.CLAUSE and brk.length >= self.first_chunk_chars:
                return brk.end
            if brk.length >= self.min_chars:
                fallbacks.append(brk)
        if too_long and (best := self._best_fallback(fallbacks)):
            return best
        return len(text) if final else None

    def _best_fallback(self, fallbacks: list[_Break]) -> int | None:
        """Cut a long sentence at its last clause break, unless that leaves a short chunk; else at the latest break."""
        if not fallbacks:
            return None
        clauses = [brk for brk in fallbacks if brk.kind is _Kind.CLAUSE]
        if clauses and clauses[-1].length >= self.max_chars // 2:
            return clauses[-1].end
        return fallbacks[-1].end


def _breaks(text: str, lead: int, *, final: bool) -> Iterator[_Break | _NeedMore]:
    """Every place after ``lead`` where a chunk could end, in order; ``_NEED_MORE`` where the text runs out first."""
    n = len(text)
    spoken = list(itertools.accumulate((CJK_WEIGHT if _is_cjk(ch) else 1 for ch in text[lead:]), initial=0))
    i = lead
    while i < n:
        ch = text[i]
        if ch in _ENDS or ch in _CLAUSES:
            marks = _ENDS if ch in _ENDS else _CLAUSES
            cluster_end = _skip(text, i, marks)
            closed_end = _skip(text, cluster_end, _CLOSERS)
            end = _skip_space(text, closed_end)
            if end == n and not final:
                yield _NEED_MORE  # the cluster, its closers or the whitespace after it may go on
                return
            length = spoken[closed_end - lead]
            if _ends_here(text, i, cluster_end, closed_end, end):
                yield _Break(end, length, _Kind.SENTENCE if marks is _ENDS else _Kind.CLAUSE)
            elif end > closed_end:
                yield _Break(end, length, _Kind.SPACE)
            i = end
        elif ch.isspace():
            end = _skip_space(text, i)
            if end == n:
                if not final:
                    yield _NEED_MORE
                return
            yield _Break(end, spoken[i - lead], _Kind.SENTENCE if "\n" in text[i:end] else _Kind.SPACE)
            i = end
        else:
            if _is_cjk(ch):
                if i + 1 == n:
                    if not final:
                        yield _NEED_MORE
                    return
                if _is_cjk(text[i + 1]):
                    yield _Break(i + 1, spoken[i + 1 - lead], _Kind.CJK)
            i += 1
    if not final:
        yield _NEED_MORE


def _ends_here(text: str, start: int, cluster_end: int, closed_end: int, end: int) -> bool:
    """Whether the punctuation ``text[start:cluster_end]`` ends a sentence or clause (the text after it is known)."""
    cluster = text[start:cluster_end]
    if any(ch in _FULLWIDTH_ENDS or ch in _FULLWIDTH_CLAUSES for ch in cluster):
        return True
    following = text[end] if end < len(text) else ""
    if not (end > closed_end or not following or _is_cjk(following)):
        return False  # "3.14", "1,000", "12:30", "example.com"
    if set(cluster) <= {".", "…"}:
        if following.islower():
            return False  # "e.g. the", "approx. five", "well... maybe"
        if cluster == "." and _is_abbreviation(text, start):
            return False
    return True


def _is_abbreviation(text: str, period: int) -> bool:
    """Whether the word before the period at ``period`` is an abbreviation ("Dr", "U.S", "e.g") or an initial."""
    word_start = period
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:period].lstrip(_OPENERS)
    return word.lower() in _ABBREVIATIONS or _ACRONYM.fullmatch(word) is not None


def _skip(text: str, i: int, chars: frozenset[str]) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def split_text(text: str, **options: int) -> list[str]:
    """Split a whole text at once (same chunks as streaming it); ``options`` go to SentenceSplitter."""
    splitter = SentenceSplitter(**options)
    return splitter.feed(text) + splitter.flush()
