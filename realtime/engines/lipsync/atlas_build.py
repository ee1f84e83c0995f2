"""The avatar build's atlas step: cut the mouth atlas, then measure how open each of its mouths is seen on the
avatar's own frames.

The face mesh, like a viewer, reads the same atlas mouth differently depending on the frame it is laid on: a
smile with teeth cut from a turned head reads almost shut on another turned frame and half open on a frontal
one, and the same loud vowel then looks wide open on one base frame and closed on the next. Chosen by the
openings measured in their own frames, the rendered mouths wander with the base frame's head pose, away from
the loudness. So each entry is composed by the engine itself on SEEN_FRAMES base frames spread over the clip's
head poses and the face mesh reads its opening there; at run time each base frame takes the readings of its
nearest measured pose (atlas.fit_avatar), and the choice aims at the opening that will be seen.

Cost: SEEN_FRAMES × K compositions and mesh runs (about a thousand: seconds), whatever the clip's length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from realtime.avatar.extras import ExtraInputs, ExtraResult
from realtime.face import topology
from realtime.face.mesh import FaceLandmarker

from .atlas import BaseParts, compose, fit_avatar
from .mouth_atlas import MouthAtlas, build_mouth_atlas

BATCH = 8  # entries composed at once
SEEN_FRAMES = 25  # base frames measured on (bench.face harness, a minute: r 0.69 with 12, 0.75 with 25, 0.79 with 50)


def build(inputs: ExtraInputs) -> ExtraResult:
    """The avatar build's step (registered in realtime/avatar/extras.py): the atlas of a video's kept frames.
    A photo has one mouth: its engine draws the inside instead, so nothing is built for it."""
    if inputs.kind != "video":
        return ExtraResult(metadata={"built": False, "reason": f"a {inputs.kind} avatar has one mouth"})
    atlas = measure_seen(build_mouth_atlas(inputs.frames, inputs.landmarks), inputs.frames, inputs.landmarks)
    atlas.save(inputs.folder)
    return ExtraResult(metadata={"built": True, **dataclasses.asdict(atlas.coverage)}, warnings=atlas.coverage.warnings)


def spread_poses(poses: np.ndarray, count: int) -> np.ndarray:
    """(count,) indices of frames whose head poses ((N, D) MouthSpace.poses) spread over all the clip shows:
    farthest-point sampling from the first frame, so the extremes of every way the head turns are among them."""
    chosen = [0]
    gap = ((poses - poses[0]) ** 2).sum(axis=1)
    while len(chosen) < min(count, len(poses)):
        chosen.append(int(np.argmax(gap)))
        gap = np.minimum(gap, ((poses - poses[chosen[-1]]) ** 2).sum(axis=1))
    return np.array(chosen, np.int32)


def measure_seen(
    atlas: MouthAtlas, frames: Sequence[np.ndarray], landmarks: np.ndarray, count: int = SEEN_FRAMES
) -> MouthAtlas:
    """``atlas`` with ``seen`` measured: every entry composed alone on each of ``count`` base frames spread over
    the head poses, its opening read by the face mesh seeded with the base frame's points."""
    fitted = fit_avatar(atlas, landmarks, frames[0].shape[:2])
    bases = spread_poses(fitted.poses, count)
    entries = np.repeat(np.arange(len(atlas.patches))[:, None], 2, axis=1)
    weights = np.tile(np.array([[1.0, 0.0]], np.float32), (len(entries), 1))
    parts = BaseParts(fitted)
    landmarker = FaceLandmarker()
    seen = np.empty((len(entries), len(bases)), np.float32)
    for column, base in enumerate(bases):
        for start in range(0, len(entries), BATCH):  # a session's batch at a time: no more memory than a session
            chunk = entries[start : start + BATCH]
            rendered = compose(fitted, parts, frames, np.full(len(chunk), base), chunk, weights[: len(chunk)])
            for k, frame in enumerate(rendered, start):
                found = landmarker.landmarks(frame, seed=landmarks[base])
                seen[k, column] = topology.mouth_opening(found.points) if found is not None else atlas.features[k, 0]
    return dataclasses.replace(atlas, seen=seen, seen_frames=bases)
