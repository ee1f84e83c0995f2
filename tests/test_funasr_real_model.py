"""FunASR on its real code path: tiny random model folders written in the downloaded layout, loaded through
``funasr.AutoModel`` exactly as downloaded ones, streamed in 600-ms steps with their cache, flushed at the end and
punctuated. Random weights make nonsense text: these tests check the mechanics, never the words.

FunASR takes seconds to import: the folders are written and loaded once for the module.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.engines.asr import funasr as funasr_engine
from realtime.engines.asr.funasr import CHUNK_SIZE, STEP_SAMPLES, FunASRStreamingASR
from realtime.engines.base import EngineUnavailable
from testkit.defaults import conversation_settings
from testkit.funasr_models import FEATURES, TOKENS, write_punctuation_model, write_streaming_paraformer

PUNCTUATION = re.compile(r"<unk>|[，。？、.,?]")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("funasr")
    asr_state = write_streaming_paraformer(root / "paraformer")
    punc_state = write_punctuation_model(root / "punc")
    models = funasr_engine.load_models(str(root / "paraformer"), str(root / "punc"))  # the one AutoModel load
    return root, models, asr_state, punc_state


@pytest.fixture
def calls(folders, monkeypatch):
    """Every call the engine makes to the two AutoModels, with its arguments, duration and result."""
    _, models, _, _ = folders
    recorded: list[dict] = []
    for name, model in (("asr", models.asr), ("punc", models.punc)):
        generate = model.generate

        def spy(*args, _generate=generate, _name=name, **kwargs):
            started = time.perf_counter()
            result = _generate(*args, **kwargs)
            recorded.append({"model": _name, **kwargs, "seconds": time.perf_counter() - started, "result": result})
            return result

        monkeypatch.setattr(model, "generate", spy)
    return recorded


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Int16 noise shaped by a syllable-rate envelope: enough to drive the frontend and the CIF predictor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (rng.standard_normal(len(t)) * envelope * 6000).astype(np.int16)


def test_the_folders_load_through_automodel_as_downloaded_ones(folders):
    import torch

    _, models, asr_state, punc_state = folders
    asr, punc = models.asr, models.punc
    assert type(asr.model).__name__ == "ParaformerStreaming" and type(punc.model).__name__ == "CTTransformer"
    # the weights are the ones saved from the model class, every tensor of them
    for model, state in ((asr.model, asr_state), (punc.model, punc_state)):
        loaded = model.state_dict()
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[key], state[key]) for key in state)
    # tokens.json became the tokenizer, am.mvn the frontend's normalisation (a shift, then a scale, per feature)
    assert asr.kwargs["token_list"] == TOKENS and punc.kwargs["token_list"] == TOKENS
    cmvn = asr.kwargs["frontend"].cmvn
    assert tuple(cmvn.shape) == (2, FEATURES)
    assert float(cmvn[0, 0]) == pytest.approx(-8.0) and float(cmvn[1, 0]) == pytest.approx(0.25)


async def test_streaming_feeds_600_ms_steps_with_its_cache_then_flushes_and_punctuates(folders, calls):
    root, models, _, _ = folders
    engine = FunASRStreamingASR(str(root / "paraformer"), str(root / "punc"))
    await engine.load()
    assert engine._models is models  # shared with every other session of the process
    audio = speechlike(3.3)
    engine.start()
    partials = [p for at in range(0, len(audio), 320) if (p := await engine.accept(audio[at : at + 320]))]
    steps = [call for call in calls if call["model"] == "asr"]
    assert len(steps) == len(audio) // STEP_SAMPLES == 5  # one model call per full 600-ms step, none per 20 ms
    assert all(len(call["input"]) == STEP_SAMPLES and call["input"].dtype == np.float32 for call in steps)
    assert all(call["is_final"] is False and call["chunk_size"] == CHUNK_SIZE for call in steps)
    cache = steps[0]["cache"]
    assert all(call["cache"] is cache for call in steps)  # one cache carries the utterance from step to step
    assert {"encoder", "decoder", "frontend", "prev_samples"} <= cache.keys()
    assert partials, "no partial transcript while speaking"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(partials))
    step_times = [call["seconds"] for call in steps]
    # whether a step keeps up with real time is bench.voice_input's number (the FunASR row's RTF), not a bound here
    print(f"\nFunASR tiny model: {max(step_times) * 1000:.0f} ms for the slowest 600-ms step; partials {partials}")

    final = await engine.finish()
    flush = calls[len(steps)]
    assert flush["model"] == "asr" and flush["is_final"] is True and flush["cache"] is cache
    assert len(flush["input"]) == len(audio) % STEP_SAMPLES  # the 300 ms tail that did not fill a step
    [punctuation] = [call for call in calls if call["model"] == "punc"]
    unpunctuated = partials[-1] + flush["result"][0]["text"]
    assert punctuation["input"] == unpunctuated
    assert final == punctuation["result"][0]["text"] and PUNCTUATION.sub("", final) == unpunctuated

    engine.start()
    await engine.accept(audio[:STEP_SAMPLES])
    assert calls[-1]["cache"] is not cache  # the next utterance starts from a fresh cache
    engine.reset()


async def test_without_a_punctuation_folder_the_final_text_is_the_flushed_transcript(folders, calls):
    root, _, _, _ = folders
    engine = FunASRStreamingASR(str(root / "paraformer"), "")
    await engine.load()
    for at in range(0, STEP_SAMPLES * 2, 320):
        await engine.accept(speechlike(1.2, seed=1)[at : at + 320])
    final = await engine.finish()
    assert [call["model"] for call in calls] == ["asr", "asr", "asr"] and calls[-1]["is_final"]
    assert final == "".join(call["result"][0]["text"] for call in calls)


async def test_a_folder_with_damaged_weights_is_engine_unavailable_naming_the_download(folders, tmp_path):
    root, _, _, _ = folders
    damaged = tmp_path / "paraformer"
    shutil.copytree(root / "paraformer", damaged)
    (damaged / "model.pt").write_bytes(b"not a checkpoint")
    engine = FunASRStreamingASR(str(damaged), "")
    with pytest.raises(EngineUnavailable, match="download_funasr_models"):
        await engine.load()


def test_download_without_a_reachable_hub_fails_with_a_clear_error(tmp_path, closed_port):
    """The real command and the real ModelScope client against a hub that refuses: a loopback port nobody
    listens on (tests send nothing beyond loopback), named through ModelScope's own endpoint variable."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODELSCOPE_CACHE": str(tmp_path / "cache")}
    env |= {"MODELSCOPE_API_MAX_RETRIES": "1", "MODELSCOPE_REPO_TREE_PAGE_MAX_ATTEMPTS": "1"}  # fail fast
    env["MODELSCOPE_ENDPOINT"] = f"http://127.0.0.1:{closed_port}"
    done = subprocess.run(
        [sys.executable, "manage.py", "download_funasr_models", "--dest", str(tmp_path / "models")],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 1, done.stderr
    assert f"[1/3] Downloading {funasr_engine.STREAMING_MODEL_ID}" in done.stdout
    assert f"Could not download {funasr_engine.STREAMING_MODEL_ID} from ModelScope" in done.stderr
    assert "This machine needs to reach modelscope.cn" in done.stderr
    assert f"127.0.0.1:{closed_port}" in done.stderr
    assert "LIVEHUMAN_FUNASR_MODEL_DIR" not in done.stdout  # no settings printed for a model that is not there


@pytest.mark.slow
async def test_a_live_conversation_hears_through_funasr_on_its_real_code_path(folders, talk, speech):
    """The session's own mic path (VAD, turns, recogniser task) drives the engine: partials while the user
    speaks, then one final transcript stored as the user's turn; the words are the random model's nonsense."""

    root, _, _, _ = folders
    options = {"model_dir": str(root / "paraformer"), "punc_model_dir": str(root / "punc")}
    session = await talk(conversation_settings(asr_engine="funasr", asr_options=options))
    await session.hear(speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=0.8))
    text, _, user_id = await session.events.wait_for("transcript", lambda text, final, mid: final)
    partials = [partial for partial, final, _ in session.events.of("transcript") if not final]
    assert partials and text and user_id == 1
    [(stored, asr_ms)] = session.events.turns
    # that end of turn leaves only the tail to decode is proven by the model calls in
    # test_streaming_feeds_600_ms_steps_with_its_cache_then_flushes_and_punctuates (the flush holds just the tail);
    # how long the tail takes is bench.voice_input's FunASR row, not a bound here
    assert stored == text and asr_ms >= 0
