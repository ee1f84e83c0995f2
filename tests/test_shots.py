"""avatars_app/bundle/shots.py: shot cuts from colour histograms, steady stretches of one face, gap filling."""

from __future__ import annotations

import numpy as np
import skimage.data

from avatars_app.bundle.shots import colour_histogram, fill_gaps, is_cut, steady_spans
from testkit.bundles import astronaut_mesh
from tests.fixtures.media import megamind, video_frames


def _face(dx: float = 0.0, scale: float = 1.0) -> np.ndarray:
    mesh = astronaut_mesh().copy()
    centre = mesh[:, :2].mean(0)
    mesh[:, :2] = (mesh[:, :2] - centre) * scale + centre + [dx, 0]
    return mesh


def test_a_cut_is_where_the_picture_changes_not_where_the_face_moves():
    frames = video_frames(megamind())
    hists = [colour_histogram(f) for f in frames]
    cuts = [i for i in range(1, len(frames)) if is_cut(hists[i - 1], hists[i])]
    assert 3 <= len(cuts) <= 6, cuts  # the clip cuts between its two characters a few times
    portrait = skimage.data.astronaut()
    moved = np.roll(portrait, 6, axis=1)  # a head turn's worth of motion within one shot
    assert not is_cut(colour_histogram(portrait), colour_histogram(moved))
    assert not is_cut(None, colour_histogram(portrait))


def test_spans_split_at_cuts_jumps_and_long_gaps_and_bridge_short_ones():
    still = [_face(dx=0.3 * i) for i in range(10)]
    other = [_face(dx=120 + 0.3 * i, scale=0.6) for i in range(8)]  # another, smaller face elsewhere
    points = still + [None, None] + still[:6] + other + [None] * 6 + still[:5]
    spans = steady_spans(points, cuts={30}, max_gap=3)
    assert [(s.start, s.end, s.ended_by) for s in spans] == [
        (0, 18, "jump"),  # the 2-frame gap at 10-11 is bridged
        (18, 26, "no face"),  # the 6-frame gap is too long
        (32, 37, "end"),
    ]
    cut = steady_spans(still + still, cuts={10}, max_gap=3)
    assert [(s.start, s.end, s.ended_by) for s in cut] == [(0, 10, "cut"), (10, 20, "end")]


def test_gaps_are_filled_between_their_neighbours():
    a, b = _face(0.0), _face(8.0)
    filled = fill_gaps([None, a, None, None, None, b, None])
    np.testing.assert_allclose(filled[0], a)
    np.testing.assert_allclose(filled[3], (a + b) / 2, atol=1e-4)
    np.testing.assert_allclose(filled[6], b)
