"""FunASR streaming paraformer (Mandarin, with English words), plus an optional punctuation model.

FunASR is installed with the rest (requirements.txt: about 650 MB with
kaldi-native-fbank for its features) but takes about 11 s to import, so it is
imported only when this engine loads its models. The models come from local folders (settings FUNASR_MODEL_DIR and
FUNASR_PUNC_MODEL_DIR), filled by ``python manage.py download_funasr_models``;
nothing is fetched at run time.

Streaming works in fixed steps: the model takes 600 ms of audio at a time
(``CHUNK_SIZE``) with a per-utterance ``cache`` dict that carries the encoder
and decoder context from step to step, and a final call with
``is_final=True`` that flushes what the look-ahead held back.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.asr.base import ASREngine, ASRError
from realtime.engines.base import EngineUnavailable
from realtime.engines.loading import once_per_process

STREAMING_MODEL_ID = "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online"
PUNC_MODEL_ID = "iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch"
VAD_MODEL_ID = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"
INSTALL = "pip install funasr==1.4.16 kaldi-native-fbank==1.22.4"  # FunASR's fbank features need one backend
DOWNLOAD = "python manage.py download_funasr_models"

CHUNK_SIZE = [0, 10, 5]  # in 60-ms frames: 600 ms per step, 300 ms look-ahead (the model card's low-latency setting)
ENCODER_CHUNK_LOOK_BACK = 4  # steps of encoder self-attention context
DECODER_CHUNK_LOOK_BACK = 1  # encoder steps the decoder attends back to
STEP_SAMPLES = CHUNK_SIZE[1] * 960  # 960 samples = one 60-ms frame at 16 kHz
MIN_FINAL_SAMPLES = 960  # the feature front end needs at least a frame; a shorter tail is padded with silence


def funasr_installed() -> bool:
    """FunASR and a filter-bank backend for its frontend (kaldi-native-fbank, or torchaudio)."""
    return importlib.util.find_spec("funasr") is not None and any(
        importlib.util.find_spec(backend) is not None for backend in ("kaldi_native_fbank", "torchaudio")
    )


def check_available(model_dir: str, punc_model_dir: str) -> None:
    """Raise EngineUnavailable, naming the fix, unless the package and the model folders are there."""
    fix = f"run `{DOWNLOAD}` and set LIVEHUMAN_FUNASR_MODEL_DIR (setting FUNASR_MODEL_DIR) to the folder it prints"
    if not funasr_installed():
        raise EngineUnavailable(f"The FunASR engine needs the funasr package: `{INSTALL}`, then {fix}.")
    if not model_dir:
        raise EngineUnavailable(f"The FunASR engine needs a model folder: FUNASR_MODEL_DIR is empty; {fix}.")
    if not Path(model_dir).is_dir():
        raise EngineUnavailable(f"FUNASR_MODEL_DIR {model_dir!r} is not a folder; {fix}.")
    if punc_model_dir and not Path(punc_model_dir).is_dir():
        raise EngineUnavailable(
            f"FUNASR_PUNC_MODEL_DIR {punc_model_dir!r} is not a folder; run `{DOWNLOAD}` and set it to the"
            " punctuation folder it prints, or leave it empty for transcripts without punctuation."
        )


# The torch modules are shared by every session (and one folder may serve several pairings): one call at a time.
_INFERENCE = threading.Lock()


@dataclass
class FunASRModels:
    """The loaded models of one process; ``lock`` is held around every model call."""

    asr: Any
    punc: Any | None
    lock: threading.Lock = _INFERENCE


_loaded: dict[tuple[str, str], FunASRModels] = {}
_loading = threading.Lock()


@once_per_process
def load_folder(folder: str) -> Any:
    """One ``funasr.AutoModel`` per model folder and process (blocking: seconds; call it off-loop).

    The folder is read as ModelScope downloaded it (``configuration.json`` names the config, weights, token
    list and normalisation statistics), so a downloaded folder and one written by the tests load alike.
    """
    import torch
    from funasr import AutoModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # disable_update: no version check over the network at start-up.
    return AutoModel(model=folder, disable_pbar=True, disable_update=True, device=device)


def load_models(model_dir: str, punc_model_dir: str) -> FunASRModels:
    """The process's models for these folders: each folder is loaded once, whatever it is paired with."""
    with _loading:
        key = (model_dir, punc_model_dir)
        if key not in _loaded:
            punc = load_folder(punc_model_dir) if punc_model_dir else None
            _loaded[key] = FunASRModels(load_folder(model_dir), punc)
        return _loaded[key]


def _text(result: Any) -> str:
    """The text of a FunASR ``generate`` result: a list with one dict per input."""
    return str(result[0].get("text", "")) if result else ""


@dataclass
class _Utterance:
    cache: dict = field(default_factory=dict)  # the model's streaming state for this utterance only
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    text: str = ""


class FunASRStreamingASR(ASREngine):
    """Streaming recognition: each 600 ms of speech is decoded as it arrives, in a worker thread."""

    def __init__(self, model_dir: str = "", punc_model_dir: str = "") -> None:
        """``model_dir`` / ``punc_model_dir``: settings FUNASR_MODEL_DIR / FUNASR_PUNC_MODEL_DIR ("": not set)."""
        self.model_dir = model_dir
        self.punc_model_dir = punc_model_dir
        check_available(self.model_dir, self.punc_model_dir)
        self._models: FunASRModels | None = None
        self._utterance: _Utterance | None = None

    async def load(self) -> None:
        if self._models is None:
            loop = asyncio.get_running_loop()
            try:
                self._models = await loop.run_in_executor(None, load_models, self.model_dir, self.punc_model_dir)
            # FunASR and torch raise many types for a wrong or incomplete folder; all mean the same to the session.
            except Exception as exc:
                raise EngineUnavailable(
                    f"FunASR could not load the models in {self.model_dir!r} / {self.punc_model_dir!r}: {exc};"
                    f" run `{DOWNLOAD}` again to fetch complete folders."
                ) from exc

    def start(self) -> None:
        self._utterance = _Utterance()

    async def accept(self, pcm16k: np.ndarray) -> str | None:
        if self._utterance is None:
            self.start()
        utterance = self._utterance
        samples = np.asarray(pcm16k, dtype=np.float32) / 32768.0  # FunASR takes float audio in [-1, 1]
        utterance.pending = np.concatenate([utterance.pending, samples])
        steps = len(utterance.pending) // STEP_SAMPLES
        if not steps:
            return None
        ready = utterance.pending[: steps * STEP_SAMPLES]
        utterance.pending = utterance.pending[steps * STEP_SAMPLES :]
        pieces = await self._run(self._decode_steps, utterance, ready)
        if not pieces:
            return None
        utterance.text += pieces
        return utterance.text

    async def finish(self) -> str:
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return ""
        tail = utterance.pending
        if len(tail) < MIN_FINAL_SAMPLES:
            tail = np.concatenate([tail, np.zeros(MIN_FINAL_SAMPLES - len(tail), np.float32)])
        return await self._run(self._decode_final, utterance, tail)

    def reset(self) -> None:
        # A decode still running in a thread only writes to the dropped utterance's own cache.
        self._utterance = None

    async def _run(self, work, utterance: _Utterance, samples: np.ndarray) -> str:
        await self.load()
        try:
            return await asyncio.get_running_loop().run_in_executor(None, work, utterance, samples)
        # Model code raises anything on odd input; the session reports it and goes on.
        except Exception as exc:
            raise ASRError(f"FunASR failed: {exc}") from exc

    def _generate(self, utterance: _Utterance, samples: np.ndarray, *, final: bool) -> str:
        return _text(
            self._models.asr.generate(
                input=samples,
                cache=utterance.cache,
                is_final=final,
                chunk_size=CHUNK_SIZE,
                encoder_chunk_look_back=ENCODER_CHUNK_LOOK_BACK,
                decoder_chunk_look_back=DECODER_CHUNK_LOOK_BACK,
            )
        )

    def _decode_steps(self, utterance: _Utterance, samples: np.ndarray) -> str:
        """Runs in a worker thread: one model call per 600-ms step."""
        with self._models.lock:
            return "".join(
                self._generate(utterance, samples[start : start + STEP_SAMPLES], final=False)
                for start in range(0, len(samples), STEP_SAMPLES)
            )

    def _decode_final(self, utterance: _Utterance, tail: np.ndarray) -> str:
        """Runs in a worker thread: flush the look-ahead, then punctuate the whole utterance."""
        with self._models.lock:
            text = utterance.text + self._generate(utterance, tail, final=True)
            if text and self._models.punc is not None:
                text = _text(self._models.punc.generate(input=text))
        return text
