"""Bundle format v2 (realtime/avatar/): round trip, compressed frames behind a shared bounded cache,
landmarks/pose/lips, version refusal with a rebuild path, extra builders, and the size of a built bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from avatars_app.bundle.builder import build_bundle
from realtime.avatar.extras import ExtraInputs, ExtraResult
from realtime.avatar.format import BUNDLE_VERSION, MANIFEST_FILE, UnsupportedBundle
from realtime.avatar.messages import Message
from realtime.avatar.reader import AvatarBundle
from realtime.face import topology
from testkit.bundles import ASTRONAUT_MOUTH_BOX, prebuilt_options, write_astronaut_bundle
from tests.fixtures.videos import moving_astronaut


def test_round_trip_frames_landmarks_pose_and_lips(tmp_path):
    bundle = AvatarBundle.open(write_astronaut_bundle(tmp_path / "b", frame_count=6))
    assert bundle.kind == "video" and bundle.manifest.version == BUNDLE_VERSION == 2
    frame = bundle.frame(0)
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8 and not frame.flags.writeable
    assert np.abs(frame.astype(int) - skimage.data.astronaut()).mean() < 3  # JPEG at quality 90
    assert bundle.landmarks.shape == (6, 468, 2) and bundle.landmarks.dtype == np.float32
    assert bundle.pose.shape == (6, 3)
    outer = bundle.lips["outer"]
    assert outer.shape == (6, len(topology.OUTER_LIPS), 2)
    x1, y1, x2, y2 = ASTRONAUT_MOUTH_BOX
    centre = outer[0].mean(0)
    assert x1 - 3 <= centre[0] <= x2 + 3 and y1 - 3 <= centre[1] <= y2 + 3  # the lips inside the mouth box


def test_decoded_frames_are_shared_and_the_cache_is_bounded(tmp_path):
    folder = write_astronaut_bundle(tmp_path / "b", frame_count=8)
    frame_bytes = 512 * 512 * 3
    bundle = AvatarBundle.open(folder, cache_bytes=3 * frame_bytes)
    first = bundle.frames[2]
    assert bundle.frames[2] is first and bundle.frames.decoded == 1  # a second session's read hits the cache
    for index in range(8):
        bundle.frames[index]
    assert bundle.frames.decoded == 8
    bundle.frames[7]
    assert bundle.frames.decoded == 8  # recent frames stay
    bundle.frames[0]
    assert bundle.frames.decoded == 9  # older ones were evicted: at most three decoded frames are held
    with pytest.raises(IndexError):
        bundle.frames[8]


def test_an_older_or_unknown_version_is_refused_with_the_rebuild_path(tmp_path):
    folder = write_astronaut_bundle(tmp_path / "b", frame_count=2)
    data = json.loads((folder / MANIFEST_FILE).read_text())
    for version in (1, 3, None):
        data["version"] = version
        (folder / MANIFEST_FILE).write_text(json.dumps(data))
        with pytest.raises(UnsupportedBundle, match=r"reads version 2\. Rebuild the avatar.*rebuild_avatars"):
            AvatarBundle.open(folder)


def test_missing_or_mismatched_files_are_refused(tmp_path):
    folder = write_astronaut_bundle(tmp_path / "b", frame_count=2)
    np.save(folder / "landmarks.npy", np.zeros((3, 468, 2), np.float32))
    with pytest.raises(UnsupportedBundle, match=r"landmarks\.npy"):
        AvatarBundle.open(folder)
    (folder / "frames.jpg").write_bytes(b"short")
    with pytest.raises(UnsupportedBundle, match="frame index"):
        AvatarBundle.open(folder)


def record_mouths(inputs: ExtraInputs) -> ExtraResult:
    """A test extra builder: the mean lip position of each frame, from what the hook is given."""
    lips = inputs.landmarks[:, list(topology.OUTER_LIPS)].mean(1)
    np.save(inputs.folder / "lips.npy", lips)
    first = inputs.frames[0]
    return ExtraResult(
        metadata={"frames": len(inputs.frames), "shape": list(first.shape), "kind": inputs.kind},
        warnings=[Message("test extra ran")],
    )


def test_extra_builders_run_after_the_landmarks_and_their_data_is_read_back(tmp_path, monkeypatch):
    from realtime.avatar import extras

    monkeypatch.setitem(extras.EXTRA_BUILDERS, "mouths", f"{__name__}:record_mouths")
    video = moving_astronaut(tmp_path / "a.mp4", size=(320, 240), seconds=1.2)
    folder, manifest = build_bundle(video.path, tmp_path / "avatar", "c0" * 32, prebuilt_options())
    bundle = AvatarBundle.open(folder)
    assert manifest.extras["mouths"] == {"frames": bundle.frame_count, "shape": [240, 320, 3], "kind": "video"}
    assert Message("test extra ran") in manifest.warnings
    assert Message("test extra ran") in bundle.manifest.warnings  # and read back
    lips = np.load(bundle.extra_folder("mouths") / "lips.npy")
    np.testing.assert_allclose(lips, bundle.landmarks[:, list(topology.OUTER_LIPS)].mean(1), atol=1e-4)
    with pytest.raises(UnsupportedBundle, match="no 'atlas' data"):
        bundle.extra_folder("atlas")


def _bundle_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_built_bundle_is_a_fraction_of_its_raw_frames(tmp_path):
    video = moving_astronaut(tmp_path / "a.mp4", size=(640, 360), seconds=2)
    folder, manifest = build_bundle(video.path, tmp_path / "avatar", "d0" * 32, prebuilt_options())
    raw = manifest.frame_count * manifest.width * manifest.height * 3
    assert _bundle_bytes(folder) < 0.2 * raw
    bundle = AvatarBundle.open(folder)
    lips = bundle.lips["outer"].mean(1)
    for index, (x, y) in enumerate(lips):  # the stored lips are on the true mouth of every frame
        tx, ty = video.mouths[index]
        assert abs(x - tx) < 6 and abs(y - ty) < 6, (index, (x, y), (tx, ty))
