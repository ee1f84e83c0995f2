"""Face quality and speed, measured on the rendered frames by the same landmark model that built the avatar.

One command, one run: about a minute of Piper speech is lip-synced on a video avatar (opencv-doc's
``Megamind.avi``, built as an upload is: the build keeps its longest steady shot of one face) and on a photo
avatar (scikit-image's astronaut, with its synthesised idle loop), by today's mouth-warp engine and by the new
default (the atlas for the video, the photo mouth for the portrait). The
face mesh is then run on every rendered frame — an independent measurement, as talking-face papers report
landmark distances — and for each avatar and engine the bench prints:

- opening vs loudness: Pearson r between the mouth opening (inner lips, face heights) and the loudness
  envelope (RMS per frame), at the best lag within ±3 frames (goal ≥ 0.7 at a lag within one frame);
- where the mouth is: upper-lip contour and corners from the base frame's own, in face heights (goal ≤ 0.03);
- lips that close: 10th percentile of the opening while speaking, against the person's closed mouth (goal: no
  more than 0.01 face heights above it);
- seam: mean gradient magnitude along the edge of the region the engine changed, over the same ring of the
  untouched base frame (goal ≤ 1.2);
- realism proxy: Bhattacharyya distance between colour histograms of rendered and real mouth regions;
- speed: rendered frames per CPU second (OpenCV on one thread, the allocator set up as a worker's model pool sets
  it: frames per second of one core, whatever else the machine runs), at batch 1 and at batch 8 (consecutive
  frames of one session); build seconds per video-second.

Side-by-side stills (base frame, today's engine, the new engine) are written as PNGs under ``--out``.

    python -m bench.face [--seconds 60] [--video data/test-media/Megamind.avi] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import django
import numpy as np
import skimage.data

from realtime.allocator import keep_freed_memory
from realtime.audio import SAMPLE_RATE, to_16k, to_float32
from realtime.avatar.idle_loop import idle_loop
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.base import LipSyncEngine
from realtime.engines.lipsync.default import DefaultLipSync
from realtime.engines.lipsync.mouth_atlas import ATLAS
from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync
from realtime.engines.lipsync.photo_mouth import MouthGeometry, PhotoMouthLipSync, render_mouth
from realtime.engines.tts.base import VoiceSettings
from realtime.engines.tts.piper import PiperTTS
from realtime.face import topology
from realtime.face.mesh import FaceLandmarker
from testkit.bundles import MemoryAvatar, frame_requests
from testkit.defaults import open_bundle

FPS = 25
ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    "Hello, and welcome to the live demo. I am a digital human, and I can talk with you about almost anything. "
    "My mouth moves with my voice: open vowels like ah open it wide, and the lips press together for m, b and p. "
    "Maybe you would like to hear about the weather, or about a book I read last week, or about my favourite "
    "music. Please ask me a question whenever you like, and I will do my best to answer it clearly and briefly. "
)
SPEAKING_RMS = 0.02  # frames louder than this count as speaking


def piper_speech(seconds: float) -> np.ndarray:
    """At least ``seconds`` of Piper's offline English voice, 16 kHz float32, with short pauses between reads."""

    async def synthesise() -> np.ndarray:
        chunks = [chunk async for chunk in PiperTTS(VoiceSettings()).synthesize(TEXT)]
        return to_16k(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)

    once = to_float32(asyncio.run(synthesise()))
    pause = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    reads = int(np.ceil(seconds * SAMPLE_RATE / (len(once) + len(pause))))
    return np.concatenate([pause, *([once, pause] * reads)])[: int(seconds * SAMPLE_RATE)]


def mouth_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Today's engine's mouth box, taken from the landmarks (fairer to it than the Haar box it had)."""
    lips = landmarks[:, list(topology.OUTER_LIPS)]
    return np.concatenate([lips.min(axis=1), lips.max(axis=1)], axis=1).round().astype(np.int32)


def video_avatar(path: Path, folder: Path) -> tuple[AvatarBundle, float]:
    """The video built as an upload is (face mesh, longest steady shot, atlas); and build seconds per second of
    the source (all of it is scanned, whatever span is kept)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()
    from avatars_app.bundle.builder import build_bundle
    from testkit.bundles import prebuilt_options

    with av.open(str(path)) as container:
        seconds = float(container.duration or 0) / av.time_base
    started = time.perf_counter()
    bundle_folder, _ = build_bundle(path, folder, "face" * 16, prebuilt_options())
    return open_bundle(bundle_folder), (time.perf_counter() - started) / max(seconds, 1e-3)


def photo_avatar(landmarker: FaceLandmarker) -> MemoryAvatar:
    image = skimage.data.astronaut()
    found = landmarker.landmarks(image)
    frames, landmarks = idle_loop(image, found.points[:, :2], seconds=4.0, fps=FPS)
    return MemoryAvatar(frames=frames, landmarks=landmarks, mouth_boxes=mouth_boxes(landmarks))


@dataclass
class Result:
    correlation: float
    lag: int
    location_median: float
    location_p95: float
    closing_p10: float
    closed: float
    seam: float
    histogram: float
    fps_1: float
    fps_8: float


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> tuple[int, float]:
    scores = {
        lag: float(np.corrcoef(a[max(lag, 0) : len(a) + min(lag, 0)], b[max(-lag, 0) : len(b) - max(lag, 0)])[0, 1])
        for lag in range(-max_lag, max_lag + 1)
    }
    lag = max(scores, key=scores.__getitem__)
    return lag, scores[lag]


def gradient(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=2)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def seam_ratio(frame: np.ndarray, base: np.ndarray) -> float | None:
    """Gradient on the inner edge of the visibly changed region, over the same ring of the base frame."""
    changed = (np.abs(frame.astype(np.int16) - base).max(axis=2) > 8).astype(np.uint8)
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    ring = changed & ~cv2.erode(changed, np.ones((5, 5), np.uint8)).astype(bool)
    if ring.sum() < 20:
        return None
    return float(gradient(frame)[ring.astype(bool)].mean() / max(gradient(base)[ring.astype(bool)].mean(), 1e-6))


def mouth_histogram(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(topology.OUTER_LIPS)]).astype(np.int32)], 255)
    return np.stack([cv2.calcHist([image], [c], mask, [32], [0, 256])[:, 0] for c in range(3)])


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        np.mean(
            [
                cv2.compareHist(a[c].astype(np.float32), b[c].astype(np.float32), cv2.HISTCMP_BHATTACHARYYA)
                for c in range(3)
            ]
        )
    )


def speed(engine: LipSyncEngine, requests: list, batch: int, limit: int = 200) -> float:
    chunks = [requests[i : i + batch] for i in range(0, min(len(requests), limit), batch)]
    engine.render_batch(chunks[0])
    started = time.process_time()
    for chunk in chunks:
        engine.render_batch(chunk)
    return sum(map(len, chunks)) / (time.process_time() - started)


def evaluate(
    name: str,
    avatar: MemoryAvatar,
    engine: LipSyncEngine,
    speech: np.ndarray,
    landmarker: FaceLandmarker,
    closed: float,
) -> tuple[Result, dict[int, np.ndarray]]:
    requests = frame_requests(avatar, speech, FPS)
    loudness = np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])
    keep = {int(np.argmax(loudness)), int(np.argsort(loudness)[len(loudness) // 2])}
    speaking = np.flatnonzero(loudness > SPEAKING_RMS)
    keep.add(int(speaking[np.argmin(loudness[speaking])]))
    openings, errors, seams, stills = [], [], [], {}
    rendered_hist, real_hist = np.zeros((3, 32)), np.zeros((3, 32))
    upper = [*topology.OUTER_LIPS_UPPER, topology.MOUTH_LEFT, topology.MOUTH_RIGHT]
    for start in range(0, len(requests), 8):
        batch = requests[start : start + 8]
        for offset, (request, frame) in enumerate(zip(batch, engine.render_batch(batch), strict=True)):
            position = start + offset
            base_points = avatar.landmarks[request.frame_index]
            found = landmarker.landmarks(frame, seed=base_points)
            points = found.points[:, :2] if found else base_points
            face_height = float(topology.face_height(base_points))
            openings.append(float(topology.mouth_opening(points)))
            errors.append(float(np.linalg.norm(points[upper] - base_points[upper], axis=1).max() / face_height))
            base = avatar.frames[request.frame_index]
            if loudness[position] > SPEAKING_RMS:
                ratio = seam_ratio(frame, base)
                if ratio is not None:
                    seams.append(ratio)
                rendered_hist += mouth_histogram(frame, points)
                real_hist += mouth_histogram(base, base_points)
            if position in keep:
                stills[position] = frame
    openings_array = np.array(openings)
    lag, correlation = best_lag(openings_array, loudness)
    result = Result(
        correlation=correlation,
        lag=lag,
        location_median=float(np.median(errors)),
        location_p95=float(np.percentile(errors, 95)),
        closing_p10=float(np.percentile(openings_array[speaking], 10)),
        closed=closed,
        seam=float(np.median(seams)) if seams else 1.0,
        histogram=histogram_distance(rendered_hist, real_hist),
        fps_1=speed(engine, requests, 1),
        fps_8=speed(engine, requests, 8),
    )
    print(
        f"{name:24} r={result.correlation:5.2f} lag={result.lag:+d}  location {result.location_median:.3f}"
        f"/{result.location_p95:.3f}  p10 open {result.closing_p10:.3f} (closed {closed:.3f})"
        f"  seam {result.seam:4.2f}  hist {result.histogram:.3f}  fps/core {result.fps_1:6.1f} (b1)"
        f" {result.fps_8:6.1f} (b8)",
        flush=True,
    )
    return result, {position: (requests[position].frame_index, frame) for position, frame in stills.items()}


def save_stills(path: Path, avatar: MemoryAvatar, by_engine: dict[str, dict], label: str) -> None:
    """One row per kept frame: base | each engine, cropped to the lower face, labelled."""
    rows = []
    any_engine = next(iter(by_engine.values()))
    for position in sorted(any_engine):
        index = any_engine[position][0]
        points = avatar.landmarks[index]
        face_height = float(topology.face_height(points))
        cx, cy = points[topology.UPPER_LIP_MID]
        x1, x2 = int(max(cx - 0.6 * face_height, 0)), int(cx + 0.6 * face_height)
        y1, y2 = int(max(cy - 0.6 * face_height, 0)), int(cy + 0.5 * face_height)
        tiles = [("base", avatar.frames[index])] + [(name, stills[position][1]) for name, stills in by_engine.items()]
        crops = []
        for name, image in tiles:
            crop = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (320, round(320 * (y2 - y1) / (x2 - x1))))
            cv2.putText(crop, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
            crops.append(crop)
        rows.append(np.concatenate(crops, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet[..., ::-1])
    print(f"{label} stills: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--video", type=Path, default=ROOT / "data" / "test-media" / "Megamind.avi")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "face")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    keep_freed_memory()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine skews the fps)")
    landmarker = FaceLandmarker(num_threads=1)
    speech = piper_speech(args.seconds)
    print(f"speech: {len(speech) / SAMPLE_RATE:.0f} s of Piper")
    with tempfile.TemporaryDirectory() as tmp:
        video, build_rate = video_avatar(args.video, Path(tmp))
        coverage = video.manifest.extras[ATLAS]
        print(
            f"video avatar: {video.frame_count} frames kept of {args.video.name}, atlas of {coverage['shapes']} "
            f"shapes (opening {coverage['opening_min']:.3f}–{coverage['opening_max']:.3f}), "
            f"build {build_rate:.2f} s per video-second (landmarks and atlas included)"
        )
        closed_video = float(np.percentile(topology.mouth_opening(video.landmarks), 2))
        stills = {}
        for name, engine in (("today (mouth warp)", MouthWarpLipSync()), ("default: atlas", DefaultLipSync())):
            _, stills[name] = evaluate(f"video / {name}", video, engine, speech, landmarker, closed_video)
        save_stills(args.out / "video.png", video, stills, "video")

    photo = photo_avatar(landmarker)
    image, points = photo.frames[0], photo.landmarks[0]
    shut = render_mouth(image, MouthGeometry.of(image, points), 0.0)
    closed_photo = float(topology.mouth_opening(landmarker.landmarks(shut, seed=points).points))
    stills = {}
    for name, engine in (("today (mouth warp)", MouthWarpLipSync()), ("default: photo", PhotoMouthLipSync())):
        _, stills[name] = evaluate(f"photo / {name}", photo, engine, speech, landmarker, closed_photo)
    save_stills(args.out / "photo.png", photo, stills, "photo")


if __name__ == "__main__":
    main()
