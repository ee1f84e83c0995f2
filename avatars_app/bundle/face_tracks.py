"""Turn per-frame face detections into tracks and pick the avatar's face among them.

A video may show several faces (a poster, a second person) and the cascade sometimes fires on texture. Linking
detections over time separates a face that stays from one-frame false alarms; the avatar's face is the track
that is seen most, is largest and moves least.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from realtime.avatar.format import Box

# A detection continues a track when its centre moved less than this share of the face size since the track's
# last find (whole-frame searches are a fifth of a second apart by default: a turning head moves that much)
MATCH_DISTANCE = 1.0
MATCH_SIZE_RATIO = 1.5  # ... and its size differs by less than this factor
OTHER_FACE_MIN_SHARE = 0.25  # another face counts when seen alongside the chosen one in this share of frames


def _centre_side(box: Box) -> tuple[float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, float(((x2 - x1) * (y2 - y1)) ** 0.5)


def _distance(a: Box, b: Box) -> float:
    (ax, ay, _), (bx, by, _) = _centre_side(a), _centre_side(b)
    return float(np.hypot(ax - bx, ay - by))


@dataclass
class Track:
    """One face followed through the video: its box in each frame where it was detected."""

    boxes: dict[int, Box] = field(default_factory=dict)

    @property
    def last(self) -> Box:
        return self.boxes[max(self.boxes)]

    def continues_with(self, box: Box) -> bool:
        side, bside = _centre_side(self.last)[2], _centre_side(box)[2]
        close = _distance(self.last, box) <= MATCH_DISTANCE * max(side, bside)
        return close and max(side, bside) / max(1.0, min(side, bside)) < MATCH_SIZE_RATIO

    def median_side(self) -> float:
        return float(np.median([_centre_side(b)[2] for b in self.boxes.values()]))

    def jitter(self) -> float:
        """Median frame-to-frame movement of the centre, relative to the face size (0 = still)."""
        frames = sorted(self.boxes)
        if len(frames) < 2:
            return 1.0
        centres = np.array([_centre_side(self.boxes[i])[:2] for i in frames])
        steps = np.hypot(*np.diff(centres, axis=0).T) / np.diff(frames)
        return float(np.median(steps) / max(1.0, self.median_side()))

    def score(self, frame_count: int) -> float:
        """Seen often, large and steady: the face an operator filmed on purpose. Steadiness only tips the
        balance: a presenter's head moves too, while a false alarm jumps by its own size."""
        coverage = len(self.boxes) / max(1, frame_count)
        return coverage * self.median_side() / (1.0 + self.jitter())


def link_tracks(detections: Sequence[Sequence[Box]]) -> list[Track]:
    """Link each frame's boxes to compatible tracks, closest pairs first (so a false alarm next to the face
    cannot take the face's track), and start a new track for every box left over."""
    tracks: list[Track] = []
    for index, boxes in enumerate(detections):
        pairs = sorted(
            (_distance(track.last, box), b, t)
            for b, box in enumerate(boxes)
            for t, track in enumerate(tracks)
            if track.continues_with(box)
        )
        placed: set[int] = set()
        taken: set[int] = set()
        for _, b, t in pairs:
            if b not in placed and t not in taken:
                tracks[t].boxes[index] = boxes[b]
                placed.add(b)
                taken.add(t)
        tracks.extend(Track({index: box}) for b, box in enumerate(boxes) if b not in placed)
    return tracks


@dataclass(frozen=True)
class FaceChoice:
    """The chosen face's box per frame (None where it was not detected) and what else was seen."""

    boxes: list[Box | None]
    other_faces: int  # faces seen at the same time as the chosen one in a good share of frames


def choose_face(detections: Sequence[Sequence[Box]]) -> FaceChoice:
    frame_count = len(detections)
    tracks = link_tracks(detections)
    if not tracks:
        return FaceChoice(boxes=[None] * frame_count, other_faces=0)
    main = max(tracks, key=lambda t: t.score(frame_count))
    others = sum(
        1
        for t in tracks
        if t is not main and len(t.boxes.keys() & main.boxes.keys()) >= OTHER_FACE_MIN_SHARE * frame_count
    )
    return FaceChoice(boxes=[main.boxes.get(i) for i in range(frame_count)], other_faces=others)
