"""The lip-sync interface: a batch of per-frame requests in, full video frames out.

An engine instance is a process-wide model (one per checkpoint and device),
shared by every session; it keeps no per-session state, so requests from many
sessions can be gathered into one batch (DESIGN.md §5).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from realtime.avatar.reader import AvatarBundle


@dataclass(frozen=True)
class LipSyncRequest:
    """What one output video frame needs.

    ``mel`` is the 80×16 window of DESIGN.md §4 for this frame; ``audio`` the
    16 kHz float32 samples the frame covers (1/fps s), for engines that work
    from loudness and spectrum directly.
    """

    avatar: AvatarBundle
    frame_index: int
    mel: np.ndarray
    audio: np.ndarray


class LipSyncEngine(ABC):
    """A lip-sync model. ``render_batch`` blocks (torch, numpy): call it from an executor."""

    name: ClassVar[str]

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    @abstractmethod
    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        """Return one full RGB uint8 frame (H×W×3) per request, in the same order."""
