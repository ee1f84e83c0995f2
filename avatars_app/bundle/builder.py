"""Build an avatar bundle from a video file (DESIGN.md §6). No Django: the Celery task maps settings and the
Avatar row onto ``BuildOptions`` and a progress callback.

One pass decodes the video, stores each frame as JPEG and tracks the face mesh (``scan.py``); a photo is one
frame (``photo.py``). The longest steady stretch of one face is kept (``shots.py``); its landmarks are
gap-filled and smoothed, the face and mouth boxes are derived from them, and the registered extra builders
(``realtime/avatar/extras.py``) add their engine's data. The manifest is written last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.avatar.boxes import boxes_from_landmarks
from realtime.avatar.extras import run_extra_builders
from realtime.avatar.format import BUNDLE_VERSION, LANDMARKS_FILE, POSE_FILE, Manifest
from realtime.avatar.frames import JPEG_QUALITY, FrameStore, FrameWriter, keep_frames
from realtime.avatar.messages import Message, gettext_noop
from realtime.avatar.reader import AvatarBundle
from realtime.face.mesh import FaceLandmarker, head_pose
from realtime.face.smoothing import LandmarkSmoother

from .decode import DecodeLimits, VideoReader
from .errors import BadVideo
from .photo import is_photo, read_photo
from .scan import Scan, scan_frames
from .shots import Span, fill_gaps, steady_spans
from .storage import bundle_folder_name, link_files, publish, staging

Progress = Callable[[str, float], None]  # (stage, overall fraction 0..1); may raise to stop the build

# Share of the whole build each stage takes, measured on a 720p clip: decoding, encoding and tracking dominate.
_SCAN_END = 0.9
_EXTRAS_END = 0.98
_SMALLEST_FACE = 40  # pixels: the full-range detector finds faces about this tall


@dataclass(frozen=True)
class BuildOptions:
    fps: int
    limits: DecodeLimits
    count_faces_every: int  # search the whole of every k-th frame for other faces (to warn about them)
    min_face_ratio: float  # share of frames in which a face must be found
    max_gap_seconds: float  # shorter runs without a face are interpolated; longer ones end a steady stretch
    min_span_seconds: float  # the kept stretch of one face must last at least this long
    jpeg_quality: int = JPEG_QUALITY


def _no_progress(stage: str, fraction: float) -> None:
    return None


def build_bundle(
    source: Path, avatar_dir: Path, checksum: str, options: BuildOptions, progress: Progress = _no_progress
) -> tuple[Path, Manifest]:
    """Build the bundle of ``source`` into ``avatar_dir/<version>-<checksum>``; return its folder and manifest."""
    final = avatar_dir / bundle_folder_name(checksum)
    with staging(avatar_dir) as staged:
        manifest = _write_bundle(Path(source), staged, checksum, options, progress)
        progress("publishing", _EXTRAS_END)
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
    landmarker = FaceLandmarker()
    if is_photo(source):
        return _write_photo_bundle(source, folder, checksum, options, landmarker, progress)
    with VideoReader(source, options.limits) as reader, FrameWriter(folder, options.jpeg_quality) as writer:
        info = reader.info
        expected = max(1.0, (info.duration or options.limits.max_seconds) * options.fps)
        scan = scan_frames(
            reader.frames(options.fps),
            writer,
            landmarker,
            options.count_faces_every,
            lambda index: progress("decoding", _SCAN_END * min(1.0, (index + 1) / expected)),
        )
    span, warnings = _choose_span(scan, info.width, info.height, options)
    if (span.start, span.end) != (0, len(scan.points)):
        keep_frames(folder, span.start, span.end)
    return _write_face_data(
        folder,
        scan.points[span.start : span.end],
        kind="video",
        checksum=checksum,
        size=(info.width, info.height),
        kept_span=(span.start / options.fps, span.end / options.fps),
        source_seconds=len(scan.points) / options.fps,
        warnings=warnings,
        options=options,
        progress=progress,
    )


def _write_photo_bundle(
    source: Path,
    folder: Path,
    checksum: str,
    options: BuildOptions,
    landmarker: FaceLandmarker,
    progress: Progress,
) -> Manifest:
    """A portrait: one stored frame and its mesh; the engine animates it (blinks, head and breathing motion)."""
    rgb = read_photo(source, options.limits)
    height, width = rgb.shape[:2]
    faces = landmarker.detect(rgb)
    found = landmarker.refined(rgb, max(faces, key=lambda f: f.width * f.height)) if faces else None
    if found is None:
        raise BadVideo(
            "no_face",
            gettext_noop(
                "No face was found in the photo. Use a portrait facing the camera, well lit, with the face at least "
                "%(smallest)d pixels tall in this photo's %(width)d×%(height)d picture."
            ),
            smallest=_SMALLEST_FACE,
            width=width,
            height=height,
        )
    warnings = []
    if len(faces) > 1:
        template = gettext_noop("%(count)d faces are in the photo; the avatar uses the largest one. Check the preview.")
        warnings.append(Message(template, {"count": len(faces)}))
    with FrameWriter(folder, options.jpeg_quality) as writer:
        writer.append(rgb)
    progress("decoding", _SCAN_END)
    return _write_face_data(
        folder,
        [found.points],
        kind="photo",
        checksum=checksum,
        size=(width, height),
        kept_span=(0.0, 0.0),
        source_seconds=0.0,
        warnings=warnings,
        options=options,
        progress=progress,
    )


def _write_face_data(
    folder: Path,
    points: Sequence[np.ndarray | None],
    *,
    kind: str,
    checksum: str,
    size: tuple[int, int],
    kept_span: tuple[float, float],
    source_seconds: float,
    warnings: list[Message],
    options: BuildOptions,
    progress: Progress,
) -> Manifest:
    """Landmarks, pose, boxes and extras for the stored frames, then the manifest."""
    width, height = size
    mesh = _smooth(fill_gaps(list(points)), options.fps)
    landmarks = np.ascontiguousarray(mesh[:, :, :2])
    np.save(folder / LANDMARKS_FILE, landmarks)
    pose = np.stack([head_pose(p) for p in mesh]).astype(np.float32)
    np.save(folder / POSE_FILE, pose)
    faces, mouths = boxes_from_landmarks(landmarks, width, height)
    frame_count = len(landmarks)
    frames = FrameStore(folder, frame_count, height, width, cache_bytes=0)
    progress("extras", _SCAN_END)
    extras, extra_warnings = run_extra_builders(folder, frames, landmarks, pose, options.fps, kind)
    manifest = Manifest(
        version=BUNDLE_VERSION,
        kind=kind,
        fps=options.fps,
        frame_count=frame_count,
        width=width,
        height=height,
        source_checksum=checksum,
        face_boxes=faces,
        mouth_boxes=mouths,
        kept_span=kept_span,
        source_seconds=source_seconds,
        jpeg_quality=options.jpeg_quality,
        warnings=warnings + extra_warnings,
        extras=extras,
    )
    manifest.write(folder)  # last: the manifest marks the folder complete
    return manifest


def _smooth(mesh: np.ndarray, fps: int) -> np.ndarray:
    """Zero-phase One-Euro smoothing: forwards then backwards, so the lips keep their timing."""
    forwards = LandmarkSmoother(fps)
    once = np.stack([forwards(p) for p in mesh])
    backwards = LandmarkSmoother(fps)
    return np.stack([backwards(p) for p in once[::-1]])[::-1]


def _choose_span(scan: Scan, width: int, height: int, options: BuildOptions) -> tuple[Span, list[Message]]:
    """The longest steady stretch of one face, and the warnings that say what was kept and why; or the reason
    there is no usable face."""
    total = len(scan.points)
    if scan.found == 0:
        raise BadVideo(
            "no_face",
            gettext_noop(
                "No face was found in the video. Film the person facing the camera, well lit, with the face at "
                "least %(smallest)d pixels tall in this video's %(width)d×%(height)d frame."
            ),
            smallest=_SMALLEST_FACE,
            width=width,
            height=height,
        )
    found = scan.found / max(total, 1)
    if found < options.min_face_ratio:
        raise BadVideo(
            "too_few_faces",
            gettext_noop(
                "A face was found in only %(found)d%% of the frames; at least %(needed)d%% are needed "
                "(AVATAR_MIN_FACE_RATIO). Keep the face in view, frontal and well lit, for the whole video."
            ),
            found=round(found * 100),
            needed=round(options.min_face_ratio * 100),
        )
    fps = options.fps
    spans = steady_spans(scan.points, scan.cuts, max_gap=round(options.max_gap_seconds * fps))
    best = max(spans, key=lambda span: span.length)
    if best.length < options.min_span_seconds * fps:
        raise BadVideo(
            "no_steady_face",
            gettext_noop(
                "The longest stretch showing one face steadily lasts %(length).1f s (%(start).1f–%(end).1f s); "
                "at least %(needed).1f s are needed (AVATAR_MIN_SECONDS). Upload a clip with one uninterrupted "
                "shot of the person."
            ),
            length=best.length / fps,
            start=best.start / fps,
            end=best.end / fps,
            needed=options.min_span_seconds,
        )
    warnings = []
    if (best.start, best.end) != (0, total):
        warnings.append(_kept_warning(best, spans, scan, fps))
    if scan.faces_at_once >= 2:
        template = gettext_noop(
            "%(count)d faces are visible at the same time; the avatar uses the largest and steadiest one. "
            "Check the preview."
        )
        warnings.append(Message(template, {"count": scan.faces_at_once}))
    return best, warnings


def _kept_warning(best: Span, spans: list[Span], scan: Scan, fps: int) -> Message:
    """Which part of the video was kept, and why the rest was not."""
    times = {
        "start": best.start / fps,
        "end": best.end / fps,
        "length": best.length / fps,
        "total": len(scan.points) / fps,
    }
    reasons = _why_split(spans, scan, len(scan.points))
    if not reasons:
        template = gettext_noop(
            "Kept %(start).1f–%(end).1f s (%(length).1f s) of the %(total).1f-s video: the longest stretch "
            "showing one face steadily (the rest is unsteady). Check the preview."
        )
        return Message(template, times)
    template = gettext_noop(
        "Kept %(start).1f–%(end).1f s (%(length).1f s) of the %(total).1f-s video: the longest stretch showing "
        "one face steadily (the video has %(reasons)s). Check the preview."
    )
    return Message(template, {**times, "reasons": reasons})


def _why_split(spans: list[Span], scan: Scan, total: int) -> list[Message]:
    reasons = []
    if len(scan.cuts) == 1:
        reasons.append(Message(gettext_noop("1 shot cut")))
    elif scan.cuts:
        reasons.append(Message(gettext_noop("%(count)d shot cuts"), {"count": len(scan.cuts)}))
    if any(span.ended_by == "jump" for span in spans):
        reasons.append(Message(gettext_noop("the face changes")))
    if any(span.ended_by == "no face" for span in spans) or spans[0].start > 0 or spans[-1].end < total:
        reasons.append(Message(gettext_noop("stretches without a face")))
    return reasons
