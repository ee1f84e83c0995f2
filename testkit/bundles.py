"""Lip-sync test assets: small valid avatar bundles built from scikit-image's astronaut portrait, and a
random-weights Wav2Lip checkpoint in the public file format. Shared by tests and benchmarks.

The portrait (512×512 RGB) has a frontal face at about x 175..265, y 76..166
and a smile (upper teeth showing) at about x 198..248, y 136..158, lips meeting at y 147. Frames shift the whole
picture by a few pixels (the boxes move with it), like a person sitting still.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import cv2
import numpy as np
import skimage.data

from realtime.audio import SAMPLE_RATE, mel_window, melspectrogram
from realtime.avatar.format import BUNDLE_VERSION, LANDMARKS_FILE, POSE_FILE, Box, Manifest
from realtime.avatar.frames import JPEG_QUALITY, FrameStore, FrameWriter
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.base import LipSyncRequest

if TYPE_CHECKING:
    from avatars_app.bundle.builder import BuildOptions

ASTRONAUT_FACE_BOX: Box = (170, 76, 270, 186)  # padded: forehead to below the chin, as lip-sync pastes it
ASTRONAUT_MOUTH_BOX: Box = (198, 136, 248, 158)  # its centre row is the lip line


def _shift(box: Box, dx: int, dy: int) -> Box:
    x1, y1, x2, y2 = box
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


@functools.cache
def astronaut_mesh() -> np.ndarray:
    """The portrait's (468, 3) face-mesh points, found once per process."""
    from realtime.face.mesh import FaceLandmarker

    found = FaceLandmarker().landmarks(skimage.data.astronaut())
    assert found is not None
    return found.points


class MemoryAvatar(SimpleNamespace):
    """An avatar held in memory (``frames``, ``landmarks``, whatever else an engine reads), shown as its ping-pong
    loop like a bundle; an object of its own (engines keep per-avatar work by it)."""

    def pingpong_index(self, tick: int) -> int:
        count = len(self.frames)
        period = 2 * count - 2
        position = tick % period
        return position if position < count else period - position


def write_astronaut_bundle(folder: Path, frame_count: int = 8, fps: int = 25) -> Path:
    """Write a complete bundle (frames, landmarks, pose, manifest last) into
    ``folder``; return it."""
    from realtime.face.mesh import head_pose

    folder.mkdir(parents=True, exist_ok=True)
    portrait = skimage.data.astronaut()
    mesh = astronaut_mesh()
    height, width = portrait.shape[:2]
    frames, face_boxes, mouth_boxes, landmarks = [], [], [], []
    for k in range(frame_count):
        phase = 2 * math.pi * k / max(frame_count, 1)
        dx, dy = round(3 * math.sin(phase)), round(2 * math.sin(2 * phase))
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(portrait, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
        frames.append(moved)
        face_boxes.append(_shift(ASTRONAUT_FACE_BOX, dx, dy))
        mouth_boxes.append(_shift(ASTRONAUT_MOUTH_BOX, dx, dy))
        landmarks.append(mesh[:, :2] + np.float32([dx, dy]))
    with FrameWriter(folder) as writer:
        for frame in frames:
            writer.append(frame)
    np.save(folder / LANDMARKS_FILE, np.stack(landmarks).astype(np.float32))
    np.save(folder / POSE_FILE, np.repeat(head_pose(mesh)[None], frame_count, axis=0))
    Manifest(
        version=BUNDLE_VERSION,
        kind="video",
        fps=fps,
        frame_count=frame_count,
        width=width,
        height=height,
        source_checksum=hashlib.sha256(np.stack(frames).tobytes()).hexdigest(),
        face_boxes=face_boxes,
        mouth_boxes=mouth_boxes,
        kept_span=(0.0, frame_count / fps),
        source_seconds=frame_count / fps,
        jpeg_quality=JPEG_QUALITY,
    ).write(folder)
    return folder


def repaint_frames(folder: Path, paint) -> None:
    """Rewrite a bundle's stored frames through ``paint(rgb) -> rgb`` (test scenes: a green-screen patch)."""
    manifest = Manifest.read(folder)
    store = FrameStore(folder, manifest.frame_count, manifest.height, manifest.width, cache_bytes=0)
    frames = [paint(np.array(store[i])) for i in range(len(store))]
    del store
    with FrameWriter(folder, manifest.jpeg_quality) as writer:
        for frame in frames:
            writer.append(frame)


def write_random_wav2lip_checkpoint(path: Path, seed: int = 0, face_size: int = 96) -> Path:
    """A file in the public training format: DataParallel-prefixed keys under "state_dict", plus trainer state
    (the layout of both the published 96×96 files and LiveTalking's 256×256 ``wav2lip.pth``).
    Random weights: good for plumbing and speed, never for lip-sync quality."""
    import torch

    from realtime.engines.lipsync.wav2lip_model import Wav2Lip

    torch.manual_seed(seed)
    state = {"module." + key: value for key, value in Wav2Lip(face_size).state_dict().items()}
    torch.save({"state_dict": state, "global_step": 0, "global_epoch": 0}, path)
    return path


def frame_requests(bundle: AvatarBundle, speech: np.ndarray, fps: int = 25) -> list[LipSyncRequest]:
    """One lip-sync request per video frame of 16 kHz ``speech``, as the pipeline builds them (DESIGN.md §4):
    the frame's own audio and its 80x16 mel window."""
    per_frame = SAMPLE_RATE // fps
    mel = melspectrogram(speech)
    return [
        LipSyncRequest(
            avatar=bundle,
            frame_index=bundle.pingpong_index(i),
            mel=mel_window(mel, i, fps),
            audio=speech[i * per_frame : (i + 1) * per_frame],
        )
        for i in range(len(speech) // per_frame)
    ]


def prebuilt_options() -> BuildOptions:
    """Build options as the default settings give them."""
    from avatars_app.bundle.builder import BuildOptions
    from avatars_app.bundle.decode import DecodeLimits

    return BuildOptions(
        fps=25,
        limits=DecodeLimits(max_side=1280, min_source_side=128, max_source_side=4096, max_aspect=4, max_seconds=60),
        count_faces_every=5,
        min_face_ratio=0.6,
        max_gap_seconds=0.5,
        min_span_seconds=1.0,
    )


def assert_same_frame(actual: np.ndarray, expected: np.ndarray) -> None:
    """The same rendered frame up to float rounding: a batch and a lone frame take numpy's vectorised loops at
    different memory alignments, which can round a value half a level apart (seen: 1 of 786,432 values, by 1).
    A frame mixed up with another session's, or moved by a pixel, differs in thousands of values by far more."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    difference = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 1e-4 * difference.size, (
        f"{np.count_nonzero(difference)} values differ, by up to {difference.max()}"
    )
