"""Write RGB frames to a video file with PyAV: the demo clip, benchmark input and test videos."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_TIME_BASE = Fraction(1, 1000)  # millisecond timestamps: enough to express any variable frame rate


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int,
    *,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    rotation: int = 0,
    times: Sequence[float] | None = None,
) -> Path:
    """Encode ``frames`` (H×W×3 uint8 RGB, all one size) at ``fps``.

    ``rotation`` stores a display matrix (degrees counter-clockwise a player turns the picture, as phones do
    for portrait video); ``times`` gives each frame's presentation time in seconds instead of i/fps, for a
    variable frame rate.
    """
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = None
        for index, rgb in enumerate(frames):
            if stream is None:
                stream = container.add_stream(codec, rate=fps, options=options or {})
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = _TIME_BASE
                if rotation:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            seconds = times[index] if times is not None else index / fps
            frame.pts = round(seconds / _TIME_BASE)
            frame.time_base = _TIME_BASE
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))
    return path
