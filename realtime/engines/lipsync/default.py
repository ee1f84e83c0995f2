"""The default lip-sync engine: the best weights-free engine for each avatar, chosen from what its bundle holds.

An avatar built from video has a mouth atlas: its own mouths are used (atlas.py). An avatar built from a photo
has one mouth: the lips are moved and the inside drawn (photo_mouth.py), which is also what a video bundle built
before atlases existed gets. A batch may mix avatars: each engine renders its share in one call, and the frames
come back in the order asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.avatar.format import UnsupportedBundle
from realtime.avatar.reader import AvatarBundle

from .atlas import AtlasLipSync
from .base import LipSyncEngine, LipSyncRequest
from .mouth_atlas import ATLAS, AtlasMissing
from .photo_mouth import PhotoMouthLipSync


class DefaultLipSync(LipSyncEngine):
    """Routes each request to the atlas engine or the photo engine by its avatar."""

    name = "default"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.atlas = AtlasLipSync(device)
        self.photo = PhotoMouthLipSync(device)

    def engine_for(self, avatar: AvatarBundle) -> LipSyncEngine:
        """The atlas engine when the avatar has a usable atlas, else the photo engine."""
        if avatar.manifest.kind != "video" or not avatar.manifest.extras.get(ATLAS, {}).get("built"):
            return self.photo
        try:
            self.atlas.fitted(avatar)
        except (AtlasMissing, UnsupportedBundle):
            return self.photo
        return self.atlas

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(requests)
        groups: dict[int, tuple[LipSyncEngine, list[int]]] = {}
        for position, request in enumerate(requests):
            engine = self.engine_for(request.avatar)
            groups.setdefault(id(engine), (engine, []))[1].append(position)
        for engine, positions in groups.values():
            for position, frame in zip(positions, engine.render_batch([requests[p] for p in positions]), strict=True):
                out[position] = frame
        return out  # type: ignore[return-value]
