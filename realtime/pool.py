"""The model pool: one copy per process of every engine model and avatar bundle, shared by all sessions.

Loading (a Piper voice, a Wav2Lip checkpoint, a bundle's memory maps) happens
once per process, on first use or ahead of time (``warm``, for preloading the
active roles), in an executor: a second session asking for the same model while
it loads waits for the first load. Sessions hold a ``Lease``; releasing it drops
the session's references (and anything it still had queued for the model),
while the pool keeps the models warm for the next session and for role switches
(DESIGN.md §5).

Every lip-sync model has one ``BatchingExecutor``: the frames all sessions ask
of that model are gathered into shared forward passes, run one at a time in the
pool's render thread. The pool also sets the process's allocator up for those
batches, and has it give freed memory back after each session (allocator.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from realtime.allocator import keep_freed_memory, trim_later
from realtime.audio import MEL_BINS, MEL_SILENCE, MEL_WINDOW
from realtime.avatar.format import MANIFEST_FILE
from realtime.avatar.reader import AvatarBundle
from realtime.batching import BatchingExecutor
from realtime.engines.lipsync.base import LipSyncEngine, LipSyncRequest
from realtime.engines.registry import engine_class
from realtime.engines.tts.base import TTSEngine, VoiceSettings
from realtime.engines.tts.memory import RememberingTTS
from realtime.metrics import LIPSYNC_BATCH_SIZE
from realtime.pipeline.render import Renderer

WARM_UP_TEXT = {"en": "Hello.", "zh": "你好。"}  # one short sentence per language, to warm a voice up

logger = logging.getLogger(__name__)

QUEUED_BATCHES_PER_SESSION = 2  # a render stage waits for each call, so it never has more than one batch queued


@dataclass(eq=False)
class Lease:
    """A session's handle on the shared models it uses; it is also the session's place in the batcher's turn."""

    pool: ModelPool
    tts: TTSEngine
    lipsync: LipSyncEngine
    avatar: AvatarBundle
    keys: tuple[Hashable, ...]
    batcher: BatchingExecutor[LipSyncRequest, np.ndarray]
    released: bool = field(default=False)
    others: dict[str, BatchingExecutor[LipSyncRequest, np.ndarray]] = field(default_factory=dict)

    async def render(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        """This session's frames, rendered in forward passes shared with the other sessions of the model."""
        return await self.batcher.submit(self, requests)

    async def renderer(self, lipsync_engine: str) -> Renderer:
        """This session's way to another lip-sync engine (a lighter one, for the degradation ladder): loaded
        like any engine, its frames batched with the other sessions of that engine until the lease is released.
        Raises what ``ModelPool.lease`` raises."""
        batcher = self.others.get(lipsync_engine)
        if batcher is None:
            batcher = self.others[lipsync_engine] = await self.pool.lipsync_batcher(lipsync_engine)
        return functools.partial(batcher.submit, self)

    def release(self) -> None:
        """Give the references back (idempotent); the models stay loaded in the pool."""
        if not self.released:
            self.released = True
            self.pool._return(self)


class ModelPool:
    """Shared engines and avatars of one process, the lip-sync batchers, and the thread renders run in."""

    def __init__(
        self,
        *,
        device: str | None = None,
        render_threads: int = 1,
        resolve: Callable[[str, str], type[Any]] = engine_class,
        batch_size: int,
        batch_wait_ms: float,
        engine_options: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        frame_cache_mb: int,
        trim_heap: bool = True,
    ) -> None:
        """``batch_size``, ``batch_wait_ms`` and ``frame_cache_mb`` have no defaults: the session factory passes
        the LIPSYNC_BATCH_* and AVATAR_FRAME_CACHE_MB settings (``livehuman_site.runtime_settings.pool_options``).
        ``trim_heap``: trim the C heap a moment after the last lease is released (``allocator.trim_later``), so
        an idle worker's RSS does not keep every session's peak; False only to measure what that is worth
        (``bench.memory``)."""
        self.device = device  # None: CUDA when torch sees a GPU, else CPU, decided at the first lip-sync load
        keep_freed_memory()  # one pool per worker process: its batches reuse freed memory from the first on
        # One render thread by default: numpy/torch already use the cores, and one queue keeps frame order simple.
        self._executor = ThreadPoolExecutor(render_threads, thread_name_prefix="lipsync")
        self._resolve = resolve
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_ms / 1000
        # Process-wide constructor arguments by kind and engine name, e.g. {"lipsync": {"wav2lip": {"checkpoint": …}}}
        self._engine_options = engine_options or {}
        self._frame_cache_bytes = frame_cache_mb * 1024 * 1024  # decoded frames kept per avatar, for all sessions
        self.trim_heap = trim_heap
        self._loaded: dict[Hashable, Any] = {}
        self._load_locks: dict[Hashable, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._batchers: dict[Hashable, BatchingExecutor[LipSyncRequest, np.ndarray]] = {}
        self._users: Counter[Hashable] = Counter()
        self._leases = 0

    async def lease(self, *, tts_engine: str, voice: VoiceSettings, lipsync_engine: str, avatar_path: Path) -> Lease:
        """The engines and avatar a session needs, loading what is not loaded yet (nothing, for a warm role).

        Raises what the loaders raise: ``EngineUnavailable`` (a missing package,
        checkpoint or server setting), ``UnknownEngine``, ``UnsupportedBundle``.
        """
        keys = await self.warm(
            tts_engine=tts_engine, voice=voice, lipsync_engine=lipsync_engine, avatar_path=avatar_path
        )
        tts_key, lipsync_key, avatar_key = keys
        self._users.update(keys)
        self._leases += 1
        lipsync = self._loaded[lipsync_key]
        return Lease(self, self._loaded[tts_key], lipsync, self._loaded[avatar_key], keys, self._batcher(lipsync_key))

    async def warm(
        self, *, tts_engine: str, voice: VoiceSettings, lipsync_engine: str, avatar_path: Path
    ) -> tuple[Hashable, Hashable, Hashable]:
        """Load a role's engines and avatar without taking a lease (preloading); returns their pool keys."""
        avatar_key = ("avatar", _bundle_identity(avatar_path))
        tts_key = await self._tts(tts_engine, voice)
        lipsync_key = await self._lipsync(lipsync_engine)
        await self._get(avatar_key, lambda: AvatarBundle.open(avatar_path, self._frame_cache_bytes))
        return tts_key, lipsync_key, avatar_key

    async def change_voice(self, lease: Lease, *, tts_engine: str, voice: VoiceSettings) -> None:
        """Give ``lease`` another voice (a role saved with a new one while it talks). Only the TTS changes
        hands: the lease keeps its place in the lip-sync batcher, so frames already queued are rendered as
        they would have been. Raises what ``lease`` raises."""
        tts_key = await self._tts(tts_engine, voice)
        if lease.released:
            return
        previous, *rest = lease.keys
        self._users[tts_key] += 1
        self._users.subtract([previous])
        self._users += Counter()  # drop keys nobody holds any more
        lease.tts, lease.keys = self._loaded[tts_key], (tts_key, *rest)

    async def lipsync_batcher(self, lipsync_engine: str) -> BatchingExecutor[LipSyncRequest, np.ndarray]:
        """The batcher of a lip-sync engine, loading the engine if it is not loaded yet."""
        return self._batcher(await self._lipsync(lipsync_engine))

    async def warm_up(self, keys: tuple[Hashable, Hashable, Hashable]) -> dict[str, float]:
        """One inference of each engine ``warm`` loaded (a short sentence; one silent frame), so the first
        session does not pay for first-call costs (Piper's first synthesis is about 1 s slower). Returns the
        seconds each took."""
        tts_key, lipsync_key, avatar_key = keys
        tts, lipsync, avatar = self._loaded[tts_key], self._loaded[lipsync_key], self._loaded[avatar_key]
        took: dict[str, float] = {}
        started = time.perf_counter()
        text = WARM_UP_TEXT.get(tts.voice.primary_language, WARM_UP_TEXT["en"])
        engine = tts.engine if isinstance(tts, RememberingTTS) else tts  # past the memory: the model must run
        async for _ in engine.synthesize(text):
            pass
        took["tts"] = time.perf_counter() - started
        started = time.perf_counter()
        silent = LipSyncRequest(
            avatar, 0, np.full((MEL_BINS, MEL_WINDOW), MEL_SILENCE, np.float32), np.zeros(640, np.float32)
        )
        await asyncio.get_running_loop().run_in_executor(self._executor, lipsync.render_batch, [silent])
        took["lipsync"] = time.perf_counter() - started
        return took

    async def render(self, engine: LipSyncEngine, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        """Run ``engine.render_batch`` in the render thread now, unbatched (it blocks: numpy, torch)."""
        LIPSYNC_BATCH_SIZE.observe(len(requests))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, engine.render_batch, list(requests))

    @property
    def active_leases(self) -> int:
        return self._leases

    def users(self, key: Hashable) -> int:
        """Sessions currently holding ``key`` (for tests and metrics)."""
        return self._users[key]

    def loaded(self) -> list[Hashable]:
        return list(self._loaded)

    async def aclose(self) -> None:
        """Shut the pool down (process exit): stop the batchers, close engines' clients, stop the render thread."""
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()
        for resource in self._loaded.values():
            if isinstance(resource, TTSEngine):
                await resource.aclose()
        self._loaded.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _tts(self, name: str, voice: VoiceSettings) -> Hashable:
        key = ("tts", name, voice)
        await self._get(key, lambda: RememberingTTS(self._engine("tts", name, voice)))
        return key

    async def _lipsync(self, name: str) -> Hashable:
        key = ("lipsync", name)
        await self._get(key, lambda: self._engine("lipsync", name, self._device()))
        return key

    async def _get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        if key in self._loaded:  # the common case, and a role switch's: no executor round trip
            return self._loaded[key]
        return await asyncio.get_running_loop().run_in_executor(None, self._load_once, key, load)

    def _load_once(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """Load ``key`` unless another thread already did. Thread locks, not asyncio ones: loads may come from any
        event loop (tests run one per test) and from preloading, and they run in executor threads anyway."""
        with self._locks_guard:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._loaded:
                logger.info("loading %s", key)
                self._loaded[key] = load()
            return self._loaded[key]

    def _batcher(self, lipsync_key: Hashable) -> BatchingExecutor[LipSyncRequest, np.ndarray]:
        batcher = self._batchers.get(lipsync_key)
        if batcher is None:
            engine = self._loaded[lipsync_key]
            batcher = self._batchers[lipsync_key] = BatchingExecutor(
                functools.partial(self.render, engine),
                batch_size=self.batch_size,
                wait_s=self.batch_wait_s,
                max_queued=QUEUED_BATCHES_PER_SESSION * self.batch_size,
                name=f"lipsync.{engine.name}",
            )
        return batcher

    def _engine(self, kind: str, name: str, first: Any) -> Any:
        """A new engine of ``kind`` called ``name``: its per-session argument first, then the process's options."""
        return self._resolve(kind, name)(first, **self._engine_options.get(kind, {}).get(name, {}))

    def _device(self) -> str:
        if self.device is None:
            self.device = default_device()
        return self.device

    def _return(self, lease: Lease) -> None:
        for batcher in (lease.batcher, *lease.others.values()):
            batcher.forget(lease)
        self._users.subtract(lease.keys)
        self._users += Counter()  # drop keys nobody holds any more
        self._leases -= 1
        if self.trim_heap:
            trim_later(idle=lambda: self._leases == 0)


def default_device() -> str:
    """CUDA when torch is installed and sees a GPU, else CPU (DESIGN.md §5). Imports torch: call off the loop."""
    if find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _bundle_identity(path: Path) -> tuple[str, int]:
    """A bundle rebuilt in place gets a new manifest (written last), so its mtime tells the versions apart."""
    manifest = Path(path) / MANIFEST_FILE
    try:
        return str(Path(path).resolve()), manifest.stat().st_mtime_ns
    except FileNotFoundError:
        return str(path), 0  # AvatarBundle.open reports the missing bundle clearly
