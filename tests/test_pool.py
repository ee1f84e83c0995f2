"""The model pool: one copy of each model and avatar per process, shared; leases counted and given back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.avatar.format import UnsupportedBundle
from realtime.engines.base import EngineUnavailable
from realtime.engines.tts.base import VoiceSettings
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool, session_config
from testkit.waits import until
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
    pool = model_pool(device="cpu", resolve=resolver)
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
    pool = model_pool(device="cpu", resolve=resolver)
    await pool.lease(tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    await pool.lease(
        tts_engine="piper", voice=VoiceSettings(rate=1.5), lipsync_engine="default", avatar_path=bundle_path
    )
    assert resolver.built.count(("tts", "piper")) == 2
    assert resolver.built.count(("lipsync", "default")) == 1
    await pool.aclose()


async def test_a_new_voice_changes_only_the_leases_tts_and_keeps_its_queued_frames(bundle_path):
    """A role saved with another voice while it talks: the lease takes the new TTS, the old one's count goes,
    and frames already queued in the batcher are rendered, not cancelled."""
    from realtime.engines.lipsync.base import LipSyncRequest

    pool = model_pool(device="cpu", resolve=CountingResolver())
    lease = await pool.lease(tts_engine="piper", voice=voice(), lipsync_engine="default", avatar_path=bundle_path)
    old_tts, (old_key, lipsync_key, avatar_key) = lease.tts, lease.keys
    mel, audio = np.zeros((80, 16), np.float32), np.zeros(640, np.float32)
    queued = asyncio.ensure_future(lease.render([LipSyncRequest(lease.avatar, i, mel, audio) for i in range(6)]))

    await pool.change_voice(lease, tts_engine="piper", voice=voice(rate=1.5))

    assert lease.tts is not old_tts and lease.keys[0] == ("tts", "piper", voice(rate=1.5))
    assert (pool.users(old_key), pool.users(lease.keys[0])) == (0, 1)
    assert pool.users(lipsync_key) == pool.users(avatar_key) == 1 and pool.active_leases == 1
    assert len(await queued) == 6
    lease.release()
    assert all(pool.users(key) == 0 for key in (*lease.keys, old_key)) and pool.active_leases == 0
    await pool.aclose()


async def test_a_failed_load_is_reported_and_retried_next_time(bundle_path, tmp_path):
    resolver = CountingResolver()
    pool = model_pool(device="cpu", resolve=resolver)
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

    pool = model_pool(
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

    pool = model_pool(device="cpu", resolve=CountingResolver())
    spec = dict(tts_engine="piper", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle_path)
    before = (await pool.lease(**spec)).avatar
    manifest = bundle_path / "manifest.json"
    os.utime(manifest, ns=(manifest.stat().st_atime_ns, manifest.stat().st_mtime_ns + 1_000_000))
    after = (await pool.lease(**spec)).avatar
    assert after is not before
    await pool.aclose()


# --- sharing across sessions and roles, and nothing left behind ------------------------------------------------


def voice(rate: float = 1.0) -> VoiceSettings:
    return VoiceSettings(rate=rate)


async def test_roles_share_whatever_parts_they_have_in_common(tmp_path):
    """Two roles on one avatar with different voices, and a third with the first one's voice on another avatar."""
    first, second = write_astronaut_bundle(tmp_path / "first"), write_astronaut_bundle(tmp_path / "second")
    resolver = CountingResolver()
    pool = model_pool(device="cpu", resolve=resolver)
    host = await pool.lease(tts_engine="piper", voice=voice(), lipsync_engine="default", avatar_path=first)
    guide = await pool.lease(tts_engine="piper", voice=voice(1.3), lipsync_engine="default", avatar_path=first)
    twin = await pool.lease(tts_engine="piper", voice=voice(), lipsync_engine="default", avatar_path=second)
    assert host.avatar is guide.avatar and host.avatar is not twin.avatar
    assert host.tts is twin.tts and host.tts is not guide.tts
    assert host.lipsync is guide.lipsync is twin.lipsync
    assert host.batcher is guide.batcher is twin.batcher  # one batching executor per model
    assert resolver.built.count(("lipsync", "default")) == 1
    assert resolver.built.count(("tts", "piper")) == 2
    # one decoded-frame cache per avatar for every session; the raw arrays are the bundle's memory maps
    assert host.avatar.frames is guide.avatar.frames
    assert host.avatar.frames[0] is guide.avatar.frames[0]  # decoded once, then served from the cache
    assert isinstance(host.avatar.landmarks, np.memmap)
    await pool.aclose()


async def test_sessions_of_one_role_hold_the_pools_objects_and_let_go_when_closed(bundle_path):
    import gc
    import weakref

    from realtime.engines.lipsync.base import LipSyncRequest
    from realtime.session import LiveSession
    from testkit.voice import RecordingEvents

    pool = model_pool(device="cpu", resolve=CountingResolver())
    config = session_config(
        session_id="s",
        role_id=1,
        role_name="r",
        fps=25,
        avatar_path=bundle_path,
        lipsync_engine="default",
        tts_engine="piper",
        voice=voice(),
    )
    sessions = [await LiveSession.open(config, pool, RecordingEvents()) for _ in range(3)]
    avatar = sessions[0].lease.avatar
    for live in sessions:
        assert live.video_track.avatar is avatar and live.pipeline.features.avatar is avatar
        assert live.pipeline.speech.tts.engine is sessions[0].lease.tts  # MeasuredTTS wraps the pool's voice
        assert live.lease.lipsync is sessions[0].lease.lipsync
    assert all(pool.users(key) == 3 for key in sessions[0].lease.keys)

    await sessions[0].say("Somebody is talking.", 1)
    lipsync = sessions[0].lease.lipsync
    await until(lambda: lipsync.batches, what="the first frames rendered")
    refs = [weakref.ref(live) for live in sessions]
    batcher = sessions[0].lease.batcher
    for live in sessions:
        await live.close()
    del live, sessions
    assert pool.active_leases == 0 and batcher.queued() == 0 and not batcher._queues

    # Once the batch in flight when they closed is done (the render thread holds it until then), nothing in the
    # pool keeps a session alive, nor any of their frame requests: the batcher keeps none.
    def nothing_left() -> bool:
        gc.collect()
        # type(), not isinstance(): a dead weakref.proxy among the objects raises on isinstance
        requests = [o for o in gc.get_objects() if type(o) is LipSyncRequest and o.avatar is avatar]
        return [ref() for ref in refs] == [None, None, None] and not requests

    await until(nothing_left, what="the closed sessions and their frame requests to be gone")
    assert len(pool.loaded()) == 3  # the models stay for the next session
    await pool.aclose()


async def test_concurrent_sessions_share_forward_passes(tmp_path):
    from realtime.engines.lipsync.base import LipSyncRequest

    paths = [write_astronaut_bundle(tmp_path / f"a{n}") for n in range(4)]
    engine = LevelLipSync()
    pool = model_pool(
        device="cpu", resolve=lambda kind, name: (lambda d: engine) if kind == "lipsync" else lambda v: BlockTTS()
    )
    leases = [await pool.lease(tts_engine="t", voice=voice(), lipsync_engine="l", avatar_path=path) for path in paths]
    mel, audio = np.zeros((80, 16), np.float32), np.zeros(640, np.float32)
    results = await asyncio.gather(
        *(lease.render([LipSyncRequest(lease.avatar, i % 8, mel, audio) for i in range(4)]) for lease in leases)
    )
    for lease, frames in zip(leases, results, strict=True):
        assert [f.shape for f in frames] == [lease.avatar.frames[0].shape] * 4
    assert sum(engine.batches) == 16 and max(engine.batches) == 8  # four sessions' frames in batches of 8
    await pool.aclose()


async def test_warm_loads_a_role_ahead_so_its_first_lease_loads_nothing(bundle_path):
    resolver = CountingResolver()
    pool = model_pool(device="cpu", resolve=resolver)
    spec = dict(tts_engine="piper", voice=voice(), lipsync_engine="default", avatar_path=bundle_path)
    await pool.warm(**spec)
    assert pool.active_leases == 0 and len(resolver.built) == 2 and len(pool.loaded()) == 3
    await pool.lease(**spec)
    assert len(resolver.built) == 2
    await pool.aclose()
