"""The model pool: one copy of each model and avatar per process, shared; leases counted and given back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avatars_app.bundle.format import UnsupportedBundle
from realtime.engines.base import EngineUnavailable
from realtime.engines.tts.base import VoiceSettings
from realtime.pool import ModelPool
from tests.fixtures.bundles import write_astronaut_bundle
from tests.fixtures.fake_engines import BlockTTS, LevelLipSync


class CountingResolver:
    """Stands in for the engine registry and counts how often each engine is constructed."""

    def __init__(self, *, slow_s: float = 0.0) -> None:
        self.built: list[tuple[str, str]] = []
        self.slow_s = slow_s

    def __call__(self, kind: str, name: str):
        def build(*args):
            import time

            time.sleep(self.slow_s)  # a load that takes a while: concurrent leases must wait, not load twice
            self.built.append((kind, name))
            if name == "missing":
                raise EngineUnavailable("set LIVEHUMAN_SOMETHING")
            return BlockTTS() if kind == "tts" else LevelLipSync()

        return build


@pytest.fixture
def bundle_path(tmp_path):
    return write_astronaut_bundle(tmp_path / "astronaut")


async def test_sessions_share_one_copy_and_give_their_references_back(bundle_path):
    resolver = CountingResolver(slow_s=0.1)
    pool = ModelPool(device="cpu", resolve=resolver)
    spec = dict(tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    first, second = await asyncio.gather(pool.lease(**spec), pool.lease(**spec))
    assert sorted(resolver.built) == [("lipsync", "default"), ("tts", "piper")]
    assert first.tts is second.tts and first.lipsync is second.lipsync and first.avatar is second.avatar
    assert first.lipsync.device == "cpu"
    assert pool.active_leases == 2
    assert all(pool.users(key) == 2 for key in first.keys)

    first.release()
    first.release()  # idempotent
    second.release()
    assert pool.active_leases == 0
    assert all(pool.users(key) == 0 for key in first.keys)
    assert len(pool.loaded()) == 3  # models stay warm for the next session
    third = await pool.lease(**spec)
    assert third.tts is first.tts and len(resolver.built) == 2
    await pool.aclose()


async def test_another_voice_is_another_model(bundle_path):
    resolver = CountingResolver()
    pool = ModelPool(device="cpu", resolve=resolver)
    await pool.lease(tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    await pool.lease(
        tts_engine="piper", voice=VoiceSettings(rate=1.5), lipsync_engine="default", avatar_path=bundle_path
    )
    assert resolver.built.count(("tts", "piper")) == 2
    assert resolver.built.count(("lipsync", "default")) == 1
    await pool.aclose()


async def test_a_failed_load_is_reported_and_retried_next_time(bundle_path, tmp_path):
    resolver = CountingResolver()
    pool = ModelPool(device="cpu", resolve=resolver)
    with pytest.raises(EngineUnavailable, match="LIVEHUMAN_SOMETHING"):
        await pool.lease(tts_engine="missing", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    with pytest.raises(EngineUnavailable):
        await pool.lease(tts_engine="missing", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    assert resolver.built.count(("tts", "missing")) == 2
    with pytest.raises(UnsupportedBundle):
        await pool.lease(
            tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=tmp_path / "nowhere"
        )
    assert pool.active_leases == 0
    await pool.aclose()


async def test_render_runs_the_engine_off_the_event_loop(bundle_path):
    import threading

    class ThreadNoting(LevelLipSync):
        def render_batch(self, requests):
            self.thread = threading.current_thread().name
            return super().render_batch(requests)

    pool = ModelPool(
        device="cpu", resolve=lambda kind, name: ThreadNoting if kind == "lipsync" else (lambda voice: BlockTTS())
    )
    lease = await pool.lease(tts_engine="t", voice=VoiceSettings(), lipsync_engine="l", avatar_path=bundle_path)
    from realtime.engines.lipsync.base import LipSyncRequest

    request = LipSyncRequest(lease.avatar, 0, np.zeros((80, 16), np.float32), np.zeros(640, np.float32))
    frames = await lease.render([request])
    assert frames[0].shape == lease.avatar.frames[0].shape
    assert lease.lipsync.thread.startswith("lipsync")
    await pool.aclose()


async def test_a_rebuilt_bundle_is_opened_again(bundle_path):
    import os

    pool = ModelPool(device="cpu", resolve=CountingResolver())
    spec = dict(tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    before = (await pool.lease(**spec)).avatar
    manifest = bundle_path / "manifest.json"
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 1_000_000))
    after = (await pool.lease(**spec)).avatar
    assert after is not before
    await pool.aclose()
