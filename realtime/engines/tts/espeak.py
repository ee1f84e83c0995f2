"""espeak-ng: the formant synthesiser from Debian, offline, English and Mandarin.

Runs ``espeak-ng --stdout`` as an async subprocess per text and parses its WAV
as it is written, so the first audio is out before the whole text is spoken.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
from collections.abc import AsyncIterator

from ..base import EngineUnavailable
from .base import PCM, TTSEngine, TTSError, VoiceSettingError, VoiceSettings
from .wav_stream import WavStreamParser

# Language → espeak-ng voice. Plain `cmn`/`zh` reads Chinese characters as pinyin with English digit names in
# espeak-ng 1.51 (FACTS.md); `cmn-latn-pinyin` gives tonal Mandarin from the same characters.
LANGUAGE_VOICES = {"en": "en-us", "zh": "cmn-latn-pinyin", "cmn": "cmn-latn-pinyin"}

DEFAULT_WPM = 175  # espeak-ng's own default speed, our rate 1.0
DEFAULT_PITCH = 50  # espeak-ng's pitch scale is 0..99
READ_BYTES = 8192  # about 0.19 s at 22 050 Hz per chunk handed on


@functools.cache
def installed_voices() -> frozenset[str]:
    """The names espeak-ng lists in ``espeak-ng --voices`` (language codes and voice names): the only
    ``voice_id`` values accepted. A path would make espeak-ng read a file and print its lines as errors."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return frozenset()
    listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10, check=False).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other-languages
        columns = line.split()
        if len(columns) >= 4:
            names.update({columns[1], columns[3]})
    return frozenset(name for name in names if "/" not in name and not name.startswith("."))


def voice_for_language(voice: VoiceSettings) -> str:
    """The espeak-ng voice for the Voice's language: by full tag, then by primary subtag, else the subtag itself."""
    tag = voice.language.strip().lower()
    primary = voice.primary_language
    return LANGUAGE_VOICES.get(tag, LANGUAGE_VOICES.get(primary, primary))


def espeak_flags(voice: VoiceSettings) -> list[str]:
    """Voice, speed (words/min), pitch (0..99) and amplitude (0..200) flags for these settings."""
    name = voice.voice_id or voice_for_language(voice)
    wpm = round(min(max(DEFAULT_WPM * voice.rate, 80), 450))
    pitch = round(min(max(DEFAULT_PITCH * (1 + voice.pitch / 100), 0), 99))
    amplitude = round(min(max(100 * voice.volume, 0), 200))
    return ["-v", name, "-s", str(wpm), "-p", str(pitch), "-a", str(amplitude)]


class EspeakTTS(TTSEngine):
    """espeak-ng subprocess. All of rate, pitch and volume are native flags."""

    def __init__(self, voice: VoiceSettings) -> None:
        super().__init__(voice)
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise EngineUnavailable("espeak-ng is not installed: install the Debian package espeak-ng")
        self.binary = binary
        if voice.voice_id and voice.voice_id not in installed_voices():  # a row saved before the save-time check
            raise EngineUnavailable(f"espeak-ng has no voice named {voice.voice_id[:40]!r} (see `espeak-ng --voices`)")
        self._check_voice()

    @classmethod
    def check_settings(cls, voice: VoiceSettings, **options: object) -> None:
        if voice.voice_id and voice.voice_id not in installed_voices():
            raise VoiceSettingError("voice_id", "unknown_voice")

    def _check_voice(self) -> None:
        """Fail at start-up on an unknown voice: when reading stdin espeak-ng falls back to English silently."""
        flags = espeak_flags(self.voice)
        probe = subprocess.run([self.binary, "--stdout", *flags[:2], "a"], capture_output=True, timeout=10)
        if probe.returncode != 0:
            detail = probe.stderr.decode(errors="replace").strip()
            raise EngineUnavailable(f"espeak-ng cannot use voice {flags[1]!r}: {detail} (see `espeak-ng --voices`)")

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        if not text.strip():
            return
        # -b 1: the text on stdin is UTF-8 (Chinese). Text goes through stdin so a leading '-' is never a flag.
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "--stdout",
            "--stdin",
            "-b",
            "1",
            *espeak_flags(self.voice),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            process.stdin.write(text.encode())
            await process.stdin.drain()
            process.stdin.close()
            parser = WavStreamParser()
            produced = 0
            while data := await process.stdout.read(READ_BYTES):
                samples = parser.feed(data)
                if len(samples):
                    produced += len(samples)
                    yield PCM(samples, parser.sample_rate)
            stderr = (await process.stderr.read()).decode(errors="replace").strip()
            if await process.wait() != 0 or (produced == 0 and stderr):
                raise TTSError(f"espeak-ng failed (exit {process.returncode}): {stderr or 'no output'}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
