"""Load heavy engine resources (voices, checkpoints) once per process, shared by every session.

Loads happen in executor threads, so two sessions may ask for the same model at
the same moment; the lock makes the second wait for the first instead of loading
a second copy. A load that raises is not cached, so fixing the file and retrying works.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


def once_per_process(loader: Callable[..., T]) -> Callable[..., T]:
    """Memoise ``loader`` by its (hashable) arguments, serialising concurrent first loads."""
    cached = functools.lru_cache(maxsize=None)(loader)
    lock = threading.Lock()

    @functools.wraps(loader)
    def load(*args: Hashable) -> T:
        with lock:
            return cached(*args)

    load.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return load
