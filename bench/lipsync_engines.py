"""Model-only throughput of each lip-sync engine: frames/s of ``render_batch`` at batch sizes 1, 4, 8.

"Model-only" means features are precomputed and no queue, clock or encoder is
involved: it is the ceiling the full pipeline divides its own fps by. The audio
is a voiced, syllable-modulated tone, loud in every frame, so the weights-free
engine never takes its (cheaper) silent path. Wav2Lip uses --checkpoint, or
random weights when none is given (speed is the same; quality is meaningless).

    python -m bench.lipsync_engines [--seconds 3] [--batches 1,4,8] [--bundle DIR] [--checkpoint FILE] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from realtime.audio import SAMPLE_RATE
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.base import LipSyncEngine, LipSyncRequest
from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync
from realtime.engines.lipsync.wav2lip import Wav2LipLipSync
from testkit.bundles import frame_requests
from testkit.defaults import open_bundle

FPS = 25


def speech_like_audio(seconds: float) -> np.ndarray:
    """16 kHz float32: a 140 Hz buzz with formant-like harmonics, its loudness swinging at a syllable rate."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 25))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.15 * buzz * syllables).astype(np.float32)


def make_requests(bundle: AvatarBundle, count: int) -> list[LipSyncRequest]:
    """``count`` consecutive frame requests with their own audio and mel window."""
    return frame_requests(bundle, speech_like_audio(count / FPS + 0.25), FPS)[:count]


def model_only_fps(engine: LipSyncEngine, bundle: AvatarBundle, batch: int, seconds: float) -> float:
    """Frames per second ``engine.render_batch`` sustains on ``bundle`` in batches of ``batch``, measured for
    about ``seconds`` after two warm-up batches."""
    requests = make_requests(bundle, max(batch * 8, 64))
    batches = [requests[i : i + batch] for i in range(0, len(requests) - batch + 1, batch)]
    for warm_up in batches[:2]:  # first calls build kernels and fault in the memory-mapped frames
        engine.render_batch(warm_up)
    frames, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        engine.render_batch(batches[frames // batch % len(batches)])
        frames += batch
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--bundle", type=Path, help="an avatar bundle folder (default: the astronaut test bundle)")
    parser.add_argument("--checkpoint", type=Path, help="a Wav2Lip checkpoint (default: random weights)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        from testkit.bundles import write_astronaut_bundle, write_random_wav2lip_checkpoint

        bundle = open_bundle(args.bundle or write_astronaut_bundle(Path(tmp) / "astronaut", frame_count=16))
        checkpoint = args.checkpoint or write_random_wav2lip_checkpoint(Path(tmp) / "random.pth")
        engines: list[tuple[str, LipSyncEngine]] = [
            ("mouth_warp", MouthWarpLipSync()),
            (f"wav2lip{'' if args.checkpoint else ' (random weights)'}", Wav2LipLipSync(args.device, checkpoint)),
        ]
        print(
            f"avatar {bundle.manifest.width}x{bundle.manifest.height}, device {args.device}, "
            f"torch threads {torch.get_num_threads()}, {args.seconds:.0f} s per point, "
            f"load average {os.getloadavg()[0]:.1f} (other processes skew CPU numbers)"
        )
        print(f"{'engine':28} {'batch':>5} {'frames/s':>9} {'25 fps streams':>15}")
        for name, engine in engines:
            for batch in batches:
                fps = model_only_fps(engine, bundle, batch, args.seconds)
                print(f"{name:28} {batch:>5} {fps:>9.1f} {fps / FPS:>15.2f}")


if __name__ == "__main__":
    main()
