"""Read digits, dates, times and percentages in Chinese text as Chinese words, for Chinese voices.

An answer written "2026年11月29日，增长了35%" would otherwise reach a Mandarin
voice as digits, which espeak-ng reads digit by digit or in English and even
cloud voices read inconsistently. cn2an turns a number into words; this module
decides what a run of digits *is* (a year, a date, a clock time, a percentage,
a range, a fraction, a code) and so how it is read, because cn2an's own
``transform`` mis-reads "1,000", "2026-11-29", "007" and "COVID-19".

Digits that belong to a Latin word, a version string or a URL ("COVID-19",
"v1.2", "https://a.cn/2026") are left as written: the voice reads them in the
word's own language.
"""

from __future__ import annotations

import re

import cn2an

# A URL (up to the first space or non-ASCII character), an e-mail address, or a token of letters and digits
# glued together: never rewritten.
_UNTOUCHED = (
    r"(?P<untouched>(?:https?://|www\.)[!-~]+|[\w.+-]+@[\w-]+\.[\w.-]+|[A-Za-z_][\w.-]*\d[\w.-]*|\d+[A-Za-z_][\w-]*)"
)
_NUMBER = r"\d+(?:\.\d+)?"
_PATTERNS = "|".join(
    [
        _UNTOUCHED,
        r"(?P<date>(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2}))(?![\d.])",
        r"(?P<time>(?P<h>\d{1,2}):(?P<min>\d{2})(?::(?P<s>\d{2}))?)(?!\d)",
        r"(?P<year>\d{4})(?=年)",
        rf"(?P<percent>(?P<pneg>-)?(?P<pval>{_NUMBER})[%％])",
        rf"(?P<range>(?P<lo>{_NUMBER})\s*[~～\-—]\s*(?P<hi>{_NUMBER}))(?![\d.%％])",
        r"(?P<fraction>(?P<num>\d+)/(?P<den>\d+))(?![\d/])",
        r"(?P<version>\d+(?:\.\d+){2,})",
        r"(?P<grouped>\d{1,3}(?:,\d{3})+(?:\.\d+)?)",
        rf"(?P<plain>(?P<neg>-)?{_NUMBER})",
    ]
)
# Digits glued to a Latin letter before them are part of that word ("B2B", "mp3").
# ASCII: ``\w`` must not take in the Chinese characters around a Latin word.
_TOKEN = re.compile(rf"(?<![A-Za-z0-9_.])(?:{_PATTERNS})", re.ASCII)

# Longest integer still read as a quantity; longer runs (phone, order, ID numbers) are read digit by digit.
MAX_QUANTITY_DIGITS = 8
# "2" before these measure words is read 两 ("两个人"), as a speaker would.
_LIANG_MEASURES = frozenset("个位次种件只条本张天年台份块辆家句")


def read_numbers_zh(text: str) -> str:
    """``text`` with every number a Chinese speaker would read as words replaced by those words."""
    text = text.replace("°C", "℃").replace("℃", "摄氏度")
    return _TOKEN.sub(lambda match: _read(match, text), text)


def _read(match: re.Match[str], text: str) -> str:
    # The alternative that matched (``lastgroup`` would name an inner group such as ``y``).
    kind = next(name for name in _READERS if match.group(name) is not None)
    return _READERS[kind](match, text)


def _digits(digits: str) -> str:
    """Digit by digit: years, codes, phone numbers ("2026" → 二零二六)."""
    return cn2an.an2cn(digits, "direct")


def _quantity(number: str) -> str:
    """A number as a quantity ("1200.5" → 一千二百点五); too long or zero-led integers digit by digit."""
    integer = number.split(".")[0]
    if len(integer) > MAX_QUANTITY_DIGITS or (len(integer) > 1 and integer.startswith("0")):
        return _digits(integer) + ("点" + _digits(number.split(".")[1]) if "." in number else "")
    return cn2an.an2cn(number, "low")


def _plain(match: re.Match[str], text: str) -> str:
    number = match.group(0).lstrip("-")
    words = _quantity(number)
    if number == "2" and text[match.end() : match.end() + 1] in _LIANG_MEASURES:
        words = "两"
    # A hyphen after a Latin letter or digit never gets here (the token is a word or a range).
    return ("负" if match.group("neg") else "") + words


def _date(match: re.Match[str], text: str) -> str:
    return f"{_digits(match['y'])}年{_quantity(match['m'])}月{_quantity(match['d'])}日"


def _time(match: re.Match[str], text: str) -> str:
    words = f"{_quantity(match['h'])}点"
    minutes = int(match["min"])
    if minutes or match["s"]:
        words += ("零" if 0 < minutes < 10 else "") + f"{_quantity(str(minutes))}分"
    if match["s"]:
        words += f"{_quantity(str(int(match['s'])))}秒"
    return words


def _percent(match: re.Match[str], text: str) -> str:
    return ("负" if match["pneg"] else "") + "百分之" + _quantity(match["pval"])


def _range(match: re.Match[str], text: str) -> str:
    return f"{_quantity(match['lo'])}到{_quantity(match['hi'])}"


def _fraction(match: re.Match[str], text: str) -> str:
    return f"{_quantity(match['den'])}分之{_quantity(match['num'])}"


def _version(match: re.Match[str], text: str) -> str:
    return "点".join(_quantity(part) for part in match.group(0).split("."))


_READERS = {
    "untouched": lambda match, text: match.group(0),
    "date": _date,
    "time": _time,
    "year": lambda match, text: _digits(match.group(0)),
    "percent": _percent,
    "range": _range,
    "fraction": _fraction,
    "version": _version,
    "grouped": lambda match, text: _quantity(match.group(0).replace(",", "")),
    "plain": _plain,
}
