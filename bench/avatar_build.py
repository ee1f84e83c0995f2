"""Avatar build speed: seconds of build per second of video, and the build's peak memory.

Generates a talking-head-like clip (the astronaut portrait swaying, nodding and zooming slightly on a plain
background; 60 s of 1280×720 at 25 fps by default, cached under data/bench/), then builds its bundle with the
production builder and the AVATAR_* settings in a child process, so the child's peak RSS is the build's alone.
Goal on 2 cores: at most 1.0 s of build per s of video, and memory that does not grow with the video's length.

    python -m bench.avatar_build [--seconds 60] [--size 1280x720] [--detect-every N] [--keep]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import django

FPS = 25


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()


def make_clip(path: Path, seconds: float, size: tuple[int, int]) -> float:
    """Encode the benchmark clip; returns the encoding time."""
    from avatars_app.bundle import synthetic
    from avatars_app.bundle.encode import write_video

    width, height = size
    scale = 0.75 * height / 512  # the portrait fills three quarters of the height: a head-and-shoulders shot

    def frames():
        for i in range(round(seconds * FPS)):
            t = i / FPS
            centre = (width * (0.5 + 0.04 * math.sin(0.7 * t)), height * (0.45 + 0.02 * math.sin(1.3 * t)))
            matrix = synthetic.placement(centre, scale * (1 + 0.04 * math.sin(0.4 * t)), 3 * math.sin(0.9 * t))
            yield synthetic.render(size, [matrix])

    started = time.perf_counter()
    write_video(path, frames(), FPS, options={"preset": "veryfast", "crf": "20"})
    return time.perf_counter() - started


def _build(source: str, output: str, detect_every: int | None, result: multiprocessing.Queue) -> None:
    """In the child: build with production settings; report total and per-stage seconds."""
    _setup_django()
    import dataclasses

    from avatars_app.bundle.builder import build_bundle
    from avatars_app.models import Avatar
    from avatars_app.services import build_options

    options = build_options(Avatar(fps=FPS))
    if detect_every:
        options = dataclasses.replace(options, count_faces_every=detect_every)
    stages: dict[str, float] = {}
    started = time.perf_counter()

    def progress(stage: str, fraction: float) -> None:
        stages.setdefault(stage, time.perf_counter() - started)

    folder, manifest = build_bundle(Path(source), Path(output), "be" * 32, options, progress)
    total = time.perf_counter() - started
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    result.put((total, stages, manifest.frame_count, manifest.width, manifest.height, size, options.count_faces_every))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the generated clip")
    parser.add_argument("--detect-every", type=int, default=None, help="override AVATAR_DETECT_EVERY")
    parser.add_argument("--keep", action="store_true", help="keep the built bundle and print where it is")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))

    _setup_django()
    from django.conf import settings

    cache = Path(settings.DATA_DIR) / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    clip = cache / f"avatar-build-{size[0]}x{size[1]}-{args.seconds:g}s.mp4"
    if not clip.exists():
        encoding = make_clip(clip.with_suffix(".partial.mp4"), args.seconds, size)
        clip.with_suffix(".partial.mp4").rename(clip)
        print(f"generated {clip} in {encoding:.1f} s")
    print(f"clip: {clip.name}, {clip.stat().st_size / 1e6:.1f} MB, {os.cpu_count()} CPUs")

    output = Path(tempfile.mkdtemp(prefix="avatar-build-bench-"))
    result: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=_build, args=(str(clip), str(output), args.detect_every, result)
    )
    child.start()
    total, stages, frames, width, height, bundle_bytes, detect_every = result.get()
    child.join()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the spawned build (largest child)

    video_seconds = frames / FPS
    print(f"frames: {frames} at {FPS} fps = {video_seconds:.1f} s of video, {width}×{height}")
    print(f"faces counted in the whole frame every {detect_every} frames")
    order = sorted(stages.items(), key=lambda item: item[1])
    for (stage, start), end in zip(order, [t for _, t in order[1:]] + [total], strict=True):
        print(f"  {stage:<11} {end - start:7.2f} s")
    print(f"build: {total:.2f} s")
    print(f"seconds of build per second of video: {total / video_seconds:.3f}  (goal <= 1.0 on 2 cores)")
    print(f"peak RSS of the build process: {peak_mb:.0f} MB  (bundle on disk: {bundle_bytes / 1e6:.0f} MB)")
    if args.keep:
        print(f"bundle kept in {output}")
    else:
        shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    main()
