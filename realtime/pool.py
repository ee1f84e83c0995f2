"""The model pool: one copy per process of every engine model and avatar bundle, shared by all sessions.

Loading (a Piper voice, a Wav2Lip checkpoint, a bundle's memory maps) happens
on first use, in an executor, once: a second session asking for the same model
while it loads waits for the first load. Sessions hold a ``Lease``; releasing
it drops the session's references, while the pool keeps the models warm for the
next session (DESIGN.md §5). Batching lip-sync requests across sessions and
degrading under load plug in behind ``render``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from avatars_app.bundle.format import MANIFEST_FILE
from avatars_app.bundle.reader import AvatarBundle
from realtime.engines.lipsync.base import LipSyncEngine, LipSyncRequest
from realtime.engines.registry import engine_class
from realtime.engines.tts.base import TTSEngine, VoiceSettings

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Lease:
    """A session's handle on the shared models it uses."""

    pool: ModelPool
    tts: TTSEngine
    lipsync: LipSyncEngine
    avatar: AvatarBundle
    keys: tuple[Hashable, ...]
    released: bool = field(default=False)

    async def render(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        return await self.pool.render(self.lipsync, requests)

    def release(self) -> None:
        """Give the references back (idempotent); the models stay loaded in the pool."""
        if not self.released:
            self.released = True
            self.pool._return(self)


class ModelPool:
    """Shared engines and avatars of one process, and the executor lip-sync renders run in."""

    def __init__(
        self,
        *,
        device: str | None = None,
        render_threads: int = 1,
        resolve: Callable[[str, str], type[Any]] = engine_class,
    ) -> None:
        self.device = device  # None: CUDA when torch sees a GPU, else CPU, decided at the first lip-sync load
        # One render thread by default: numpy/torch already use the cores, and one queue keeps frame order simple.
        self._executor = ThreadPoolExecutor(render_threads, thread_name_prefix="lipsync")
        self._resolve = resolve
        self._loaded: dict[Hashable, Any] = {}
        self._loading: dict[Hashable, asyncio.Lock] = {}
        self._users: Counter[Hashable] = Counter()
        self._leases = 0

    async def lease(self, *, tts_engine: str, voice: VoiceSettings, lipsync_engine: str, avatar_path: Path) -> Lease:
        """The engines and avatar a session needs, loading what is not loaded yet.

        Raises what the loaders raise: ``EngineUnavailable`` (a missing package,
        checkpoint or server setting), ``UnknownEngine``, ``UnsupportedBundle``.
        """
        tts_key = ("tts", tts_engine, voice)
        lipsync_key = ("lipsync", lipsync_engine)
        avatar_key = ("avatar", _bundle_identity(avatar_path))
        tts = await self._get(tts_key, lambda: self._resolve("tts", tts_engine)(voice))
        lipsync = await self._get(lipsync_key, lambda: self._resolve("lipsync", lipsync_engine)(self._device()))
        avatar = await self._get(avatar_key, lambda: AvatarBundle.open(avatar_path))
        keys = (tts_key, lipsync_key, avatar_key)
        self._users.update(keys)
        self._leases += 1
        return Lease(self, tts, lipsync, avatar, keys)

    async def render(self, engine: LipSyncEngine, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        """Run ``engine.render_batch`` in the render executor (it blocks: numpy, torch)."""
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
        """Shut the pool down (process exit): close engines' clients and stop the render thread."""
        for resource in self._loaded.values():
            if isinstance(resource, TTSEngine):
                await resource.aclose()
        self._loaded.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        if key in self._loaded:
            return self._loaded[key]
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._loaded:
                logger.info("loading %s", key)
                self._loaded[key] = await asyncio.get_running_loop().run_in_executor(None, load)
        return self._loaded[key]

    def _device(self) -> str:
        if self.device is None:
            self.device = default_device()
        return self.device

    def _return(self, lease: Lease) -> None:
        self._users.subtract(lease.keys)
        self._users += Counter()  # drop keys nobody holds any more
        self._leases -= 1


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


@functools.cache
def get_pool() -> ModelPool:
    """This process's pool, created on first use."""
    return ModelPool()
