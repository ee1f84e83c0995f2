"""The build's one pass over the decoded video: store each frame, find the face mesh, note the shot cuts.

Frames are JPEG-encoded on a second thread while this one runs the face models (OpenCV releases the GIL), so
the two cores of a build worker both work. The mesh of each frame is seeded by the previous frame's; at a cut,
or when the face is lost, the whole frame is searched again and the largest face taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from realtime.avatar.frames import FrameWriter
from realtime.face.mesh import FaceLandmarker
from realtime.face.roi import roi_from_landmarks

from .shots import colour_histogram, is_cut

OTHER_FACE_MIN_SHARE = 0.25  # another face counts when seen alongside the chosen one in this share of searches
_MAX_PENDING = 8  # frames waiting for the encoder thread: bounds memory


@dataclass
class Scan:
    """Per frame: the mesh points (468, 3) or None; the frames that start a new shot; how many faces the
    whole-frame searches saw at once, most of the time."""

    points: list[np.ndarray | None] = field(default_factory=list)
    cuts: set[int] = field(default_factory=set)
    faces_at_once: int = 0

    @property
    def found(self) -> int:
        return sum(p is not None for p in self.points)


def _largest_face_mesh(landmarker: FaceLandmarker, rgb: np.ndarray) -> np.ndarray | None:
    faces = landmarker.detect(rgb)
    if not faces:
        return None
    largest = max(faces, key=lambda face: face.width * face.height)
    found = landmarker.refined(rgb, largest)
    return None if found is None else found.points


def scan_frames(
    frames: Iterable[np.ndarray],
    writer: FrameWriter,
    landmarker: FaceLandmarker,
    count_faces_every: int,
    on_frame: Callable[[int], None],
) -> Scan:
    """Write every frame to ``writer`` and return what the build needs to choose the avatar's face."""
    scan = Scan()
    counts: list[int] = []
    previous_hist: np.ndarray | None = None
    seed: np.ndarray | None = None
    pending: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg") as encoder:
        for index, rgb in enumerate(frames):
            pending.append(encoder.submit(writer.append, rgb))
            hist = colour_histogram(rgb)
            if is_cut(previous_hist, hist):
                scan.cuts.add(index)
                seed = None
            previous_hist = hist
            if index % count_faces_every == 0:
                counts.append(len(landmarker.detect(rgb, include_small=True)))
            points = None
            if seed is not None:
                found = landmarker.landmarks_in(rgb, roi_from_landmarks(seed))
                points = None if found is None else found.points
            if points is None:
                points = _largest_face_mesh(landmarker, rgb)
            scan.points.append(points)
            seed = points
            while len(pending) > _MAX_PENDING or (pending and pending[0].done()):
                pending.popleft().result()  # re-raises an encoder error here
            on_frame(index)
        while pending:
            pending.popleft().result()
    several = [c for c in counts if c >= 2]
    if counts and len(several) >= OTHER_FACE_MIN_SHARE * len(counts):
        scan.faces_at_once = int(np.median(several))
    return scan
