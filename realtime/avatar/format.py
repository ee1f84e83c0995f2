"""The bundle's manifest and file names; the one definition both the builder and the readers use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

BUNDLE_VERSION = 1
MANIFEST_FILE = "manifest.json"
FRAMES_FILE = "frames.npy"  # (N, H, W, 3) uint8 RGB, the full frames
CROP_SIZES = (96,)  # Wav2Lip's input; add 256 here when a 256 variant exists


def crops_file(size: int) -> str:
    """(N, size, size, 3) uint8 RGB face crops, cut from ``face_boxes`` and resized."""
    return f"crops_{size}.npy"


Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in full-frame pixels, x2/y2 exclusive


class UnsupportedBundle(ValueError):
    """A bundle this code cannot read: unknown version, missing files, or shapes that disagree with the manifest."""


@dataclass(frozen=True)
class Manifest:
    """What a bundle holds. ``face_boxes`` are the padded boxes the crops were cut from (what lip-sync pastes back
    into); ``mouth_boxes`` the mouth region inside each frame, for the weights-free engine."""

    version: int
    fps: int
    frame_count: int
    width: int
    height: int
    source_checksum: str
    face_boxes: list[Box]
    mouth_boxes: list[Box]
    crop_sizes: list[int] = field(default_factory=lambda: list(CROP_SIZES))
    warnings: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> None:
        tmp = folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(folder / MANIFEST_FILE)  # the manifest appears last and whole: it marks a complete bundle

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UnsupportedBundle(f"No avatar bundle at {folder}: {MANIFEST_FILE} is missing") from None
        except json.JSONDecodeError as exc:
            raise UnsupportedBundle(f"{path} is not valid JSON: {exc}") from None
        version = data.get("version")
        if version != BUNDLE_VERSION:
            raise UnsupportedBundle(
                f"Avatar bundle {folder} has version {version!r}; this LiveHuman reads version {BUNDLE_VERSION}. "
                "Rebuild the avatar."
            )
        try:
            manifest = cls(
                **{
                    **data,
                    "face_boxes": [tuple(b) for b in data["face_boxes"]],
                    "mouth_boxes": [tuple(b) for b in data["mouth_boxes"]],
                }
            )
        except (TypeError, KeyError) as exc:
            raise UnsupportedBundle(f"{path} is malformed: {exc}") from None
        if len(manifest.face_boxes) != manifest.frame_count or len(manifest.mouth_boxes) != manifest.frame_count:
            raise UnsupportedBundle(f"{path}: {manifest.frame_count} frames but a different number of boxes")
        return manifest
