"""Build an avatar bundle from a video file (DESIGN.md §6). No Django: the Celery task maps settings and the
Avatar row onto ``BuildOptions`` and a progress callback.

The first pass decodes, appends each frame to ``frames.npy`` (streamed: memory stays flat whatever the length)
and searches every k-th frame whole for faces; the avatar's face is chosen among all found. The second pass
reads the frames file back a chunk at a time and looks for that face in every other frame, only near where it
must be. The boxes are then smoothed over time and padded, and the crops are cut from the face regions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.avatar.format import BUNDLE_VERSION, CROP_SIZES, FRAMES_FILE, Box, Manifest, crops_file
from realtime.avatar.reader import AvatarBundle

from .boxes import cut_crop, face_boxes, mouth_boxes
from .decode import DecodeLimits, VideoReader
from .errors import BadVideo
from .face_tracks import choose_face
from .faces import FaceDetector
from .follow import follow_face
from .npy_stream import NpyAppender, iter_rows
from .smoothing import smooth_boxes
from .storage import bundle_folder_name, link_files, publish, staging

Progress = Callable[[str, float], None]  # (stage, overall fraction 0..1); may raise to stop the build

# Share of the whole build each stage takes, measured on a 720p clip: decoding, writing and detecting dominate.
_DECODE_END = 0.7
_CROP_START = 0.88
_CROP_END = 0.98
_MAX_LISTED_GAPS = 3


@dataclass(frozen=True)
class BuildOptions:
    fps: int
    limits: DecodeLimits
    detect_side: int  # long side of the grey frame the cascade searches
    detect_every: int  # search the whole of every k-th frame; the others only near the chosen face
    min_face_ratio: float  # share of frames in which the face must be found
    max_gap_seconds: float  # gaps without a face longer than this are reported as warnings


def _no_progress(stage: str, fraction: float) -> None:
    return None


def build_bundle(
    source: Path, avatar_dir: Path, checksum: str, options: BuildOptions, progress: Progress = _no_progress
) -> tuple[Path, Manifest]:
    """Build the bundle of ``source`` into ``avatar_dir/<version>-<checksum>``; return its folder and manifest."""
    final = avatar_dir / bundle_folder_name(checksum)
    with staging(avatar_dir) as staged:
        manifest = _write_bundle(Path(source), staged, checksum, options, progress)
        progress("publishing", _CROP_END)
        publish(staged, final)
    return final, manifest


def reuse_bundle(existing: Path, avatar_dir: Path, checksum: str) -> tuple[Path, Manifest]:
    """Give this avatar the already-built bundle of the same source, without decoding anything."""
    bundle = AvatarBundle.open(existing)  # refuses a damaged or foreign-version bundle before linking it
    final = avatar_dir / bundle_folder_name(checksum)
    if final.resolve() == existing.resolve():
        return final, bundle.manifest
    with staging(avatar_dir) as staged:
        link_files(existing, staged)
        publish(staged, final)
    return final, bundle.manifest


def _write_bundle(source: Path, folder: Path, checksum: str, options: BuildOptions, progress: Progress) -> Manifest:
    progress("decoding", 0.0)
    detector = FaceDetector(options.detect_side)
    searched: list[Sequence[Box]] = []  # whole-frame finds in frames 0, k, 2k, ...
    with VideoReader(source, options.limits) as reader:
        info = reader.info
        expected = max(1.0, (info.duration or options.limits.max_seconds) * options.fps)
        with NpyAppender(folder / FRAMES_FILE, (info.height, info.width, 3)) as frames_out:
            for index, rgb in enumerate(reader.frames(options.fps)):
                frames_out.append(rgb)
                if index % options.detect_every == 0:
                    searched.append(detector.detect(rgb))
                progress("decoding", _DECODE_END * min(1.0, (index + 1) / expected))
        frame_count = frames_out.count

    boxes, warnings = _face_per_frame(folder / FRAMES_FILE, frame_count, searched, detector, options, progress)
    track = smooth_boxes(boxes, options.fps)
    warnings += _gap_warnings(track.gaps, options)
    faces = face_boxes(track, info.width, info.height)
    mouths = mouth_boxes(track, info.width, info.height)

    for size in CROP_SIZES:
        crops = np.lib.format.open_memmap(
            folder / crops_file(size), mode="w+", dtype=np.uint8, shape=(frame_count, size, size, 3)
        )
        for index, frame in enumerate(iter_rows(folder / FRAMES_FILE)):
            crops[index] = cut_crop(frame, faces[index], size)
            progress("cropping", _CROP_START + (_CROP_END - _CROP_START) * (index + 1) / frame_count)
        crops.flush()
        del crops

    manifest = Manifest(
        version=BUNDLE_VERSION,
        fps=options.fps,
        frame_count=frame_count,
        width=info.width,
        height=info.height,
        source_checksum=checksum,
        face_boxes=faces,
        mouth_boxes=mouths,
        crop_sizes=list(CROP_SIZES),
        warnings=warnings,
    )
    manifest.write(folder)  # last: the manifest marks the folder complete
    return manifest


def _face_per_frame(
    frames_file: Path,
    frame_count: int,
    searched: list[Sequence[Box]],
    detector: FaceDetector,
    options: BuildOptions,
    progress: Progress,
) -> tuple[list[Box | None], list[str]]:
    """The avatar's face in every frame, chosen among all faces of the whole-frame searches; or the reason
    there is no usable face."""
    height, width = np.load(frames_file, mmap_mode="r").shape[1:3]
    choice = choose_face(searched)
    anchors = {n * options.detect_every: box for n, box in enumerate(choice.boxes) if box is not None}
    if not anchors:
        raise BadVideo(
            "no_face",
            "No face was found in the video. Film the person facing the camera, well lit, with the face at "
            f"least {detector.smallest_face(width, height)} pixels tall in this video's {width}×{height} frame.",
        )
    boxes = follow_face(
        iter_rows(frames_file),
        frame_count,
        anchors,
        detector,
        reach=options.detect_every,
        progress=lambda done: progress("tracking", _DECODE_END + (_CROP_START - _DECODE_END) * done),
    )
    found = sum(box is not None for box in boxes) / frame_count
    if found < options.min_face_ratio:
        raise BadVideo(
            "too_few_faces",
            f"A face was found in only {found:.0%} of the frames; at least {options.min_face_ratio:.0%} are "
            "needed (AVATAR_MIN_FACE_RATIO). Keep the face in view, frontal and well lit, for the whole video.",
        )
    warnings = []
    if choice.other_faces:
        warnings.append(
            f"{choice.other_faces + 1} faces are visible at the same time; the avatar uses the largest and "
            "steadiest one. Check the preview."
        )
    return boxes, warnings


def _gap_warnings(gaps: list[tuple[int, int]], options: BuildOptions) -> list[str]:
    long_gaps = [(a, b) for a, b in gaps if (b - a) / options.fps > options.max_gap_seconds]
    described = [f"{(b - a) / options.fps:.1f} s from {a / options.fps:.1f} s" for a, b in long_gaps]
    if not described:
        return []
    more = len(described) - _MAX_LISTED_GAPS
    listed = ", ".join(described[:_MAX_LISTED_GAPS]) + (f" and {more} more" if more > 0 else "")
    return [f"No face was detected for {listed}; the face box there is interpolated. Check the preview."]
