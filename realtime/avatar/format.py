"""The bundle's manifest and file names; the one definition both the builder and the readers use.

A version-2 bundle folder holds:

- ``manifest.json`` (written last: its presence marks a complete bundle);
- ``frames.jpg`` + ``frames.idx.npy``: the base frames as baseline JPEGs laid end to end, and the (N + 1) byte
  offsets that address each one (random access for the ping-pong loop; see ``frames.py`` for why JPEG);
- ``landmarks.npy`` (N, 468, 2) float32: the smoothed face-mesh points in stored-frame pixels;
- ``pose.npy`` (N, 3) float32: yaw, pitch, roll in degrees;
- ``extras/<name>/``: engine-specific data written at build time by the extra builders registered in
  ``realtime/avatar/extras.py`` (for example a mouth atlas); ``manifest.extras[name]`` holds what that builder
  returned.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .messages import Message, gettext_noop

BUNDLE_VERSION = 2
MANIFEST_FILE = "manifest.json"
FRAMES_FILE = "frames.jpg"
FRAME_INDEX_FILE = "frames.idx.npy"
LANDMARKS_FILE = "landmarks.npy"
POSE_FILE = "pose.npy"
EXTRAS_DIR = "extras"
KINDS = ("video", "photo")
REBUILD_HINT = (
    "Rebuild the avatar: the admin's 'Rebuild' action, or `python manage.py rebuild_avatars` for all outdated ones."
)


Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in full-frame pixels, x2/y2 exclusive


# What a tenant is told about a bundle this code cannot read: what to do, never the server's paths (those are
# in the exception's text, for the log). Translated when shown (messages.py).
OUTDATED_BUNDLE = Message(
    gettext_noop(
        "This avatar was built by an older version of LiveHuman and must be built again: "
        "select it in the avatar list and run 'Build the selected avatars again'."
    )
)
DAMAGED_BUNDLE = Message(
    gettext_noop(
        "This avatar's built files are missing or damaged. Build it again: select it in the avatar list and run "
        "'Build the selected avatars again'."
    )
)


class UnsupportedBundle(ValueError):
    """A bundle this code cannot read: unknown version, missing files, or shapes that disagree with the manifest.
    The text names the files, for the operator's log; ``message`` says what to do, for the tenant."""

    def __init__(self, detail: str, message: Message = DAMAGED_BUNDLE) -> None:
        super().__init__(detail)
        self.message = message


@dataclass(frozen=True)
class Manifest:
    """What a bundle holds. ``kind`` says what it was built from ("video" or "photo"). ``face_boxes`` are the
    padded face boxes (brows to below the chin); ``mouth_boxes`` the mouth region around the lips; both derived
    from the landmarks. ``kept_span`` is the [start, end) of the source, in seconds, that the frames come from,
    of the ``source_seconds`` decoded (both 0 for a photo). ``warnings`` are what the operator should check,
    kept untranslated (messages.py). ``extras`` maps an extra builder's name to what it recorded."""

    version: int
    kind: str
    fps: int
    frame_count: int
    width: int
    height: int
    source_checksum: str
    face_boxes: list[Box]
    mouth_boxes: list[Box]
    kept_span: tuple[float, float]
    source_seconds: float
    jpeg_quality: int
    warnings: list[Message] = field(default_factory=list)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        version = data.get("version") if isinstance(data, dict) else None
        if version != BUNDLE_VERSION:
            raise UnsupportedBundle(
                f"Avatar bundle {folder} has version {version!r}; this LiveHuman reads version {BUNDLE_VERSION}. "
                + REBUILD_HINT,
                OUTDATED_BUNDLE,
            )
        try:
            manifest = cls(
                **{
                    **data,
                    "face_boxes": [tuple(b) for b in data["face_boxes"]],
                    "mouth_boxes": [tuple(b) for b in data["mouth_boxes"]],
                    "kept_span": tuple(data["kept_span"]),
                    "warnings": [Message.from_json(w) for w in data.get("warnings", [])],
                }
            )
        except (TypeError, KeyError) as exc:
            raise UnsupportedBundle(f"{path} is malformed: {exc}. " + REBUILD_HINT) from None
        if len(manifest.face_boxes) != manifest.frame_count or len(manifest.mouth_boxes) != manifest.frame_count:
            raise UnsupportedBundle(f"{path}: {manifest.frame_count} frames but a different number of boxes")
        if manifest.kind not in KINDS:
            raise UnsupportedBundle(f"{path}: unknown kind {manifest.kind!r}")
        return manifest
