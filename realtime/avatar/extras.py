"""Engine-specific data in a bundle, written at build time by registered extra builders.

The avatar build calls every builder in ``EXTRA_BUILDERS`` after the landmarks are known, each with its own
empty folder ``extras/<name>/`` inside the bundle being built; what the builder returns (JSON-able) is stored
as ``manifest.extras[name]``, and its warnings join the build's. An engine reads its data back through
``AvatarBundle.extra_folder(name)`` and ``manifest.extras[name]``.

To add one, write ``def build(inputs: ExtraInputs) -> ExtraResult`` in the engine's package and list it here
by dotted path ("package.module:function"), so this module imports no engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .format import EXTRAS_DIR
from .messages import Message


@dataclass(frozen=True)
class ExtraInputs:
    """What an extra builder gets: ``frames[i]`` (read-only (H, W, 3) uint8 RGB, decoded on demand),
    ``landmarks`` (N, 468, 2) float32 in frame pixels, ``pose`` (N, 3), and its own empty ``folder``."""

    frames: Sequence[np.ndarray]
    landmarks: np.ndarray
    pose: np.ndarray
    fps: int
    kind: str
    folder: Path


@dataclass(frozen=True)
class ExtraResult:
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[Message] = field(default_factory=list)


ExtraBuilder = Callable[[ExtraInputs], ExtraResult]

# name -> "module:function". Engines register their build step here.
EXTRA_BUILDERS: dict[str, str] = {
    "mouth_atlas": "realtime.engines.lipsync.atlas_build:build",
}


def load_builder(dotted: str) -> ExtraBuilder:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def run_extra_builders(
    bundle_folder: Path,
    frames: Sequence[np.ndarray],
    landmarks: np.ndarray,
    pose: np.ndarray,
    fps: int,
    kind: str,
    builders: Mapping[str, str] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Message]]:
    """Run each registered builder into ``bundle_folder/extras/<name>/``; return the manifest's ``extras``
    and the builders' warnings."""
    extras: dict[str, dict[str, Any]] = {}
    warnings: list[Message] = []
    for name, dotted in (EXTRA_BUILDERS if builders is None else builders).items():
        folder = bundle_folder / EXTRAS_DIR / name
        folder.mkdir(parents=True)
        result = load_builder(dotted)(ExtraInputs(frames, landmarks, pose, fps, kind, folder))
        extras[name] = result.metadata
        warnings.extend(result.warnings)
    return extras, warnings
