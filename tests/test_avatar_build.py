"""Building avatar bundles: the builder on generated videos, and the build_avatar task run in-process."""

from __future__ import annotations

import dataclasses
import math
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from celery.exceptions import SoftTimeLimitExceeded

from avatars_app import tasks
from avatars_app.bundle import synthetic
from avatars_app.bundle.builder import BuildOptions, build_bundle
from avatars_app.bundle.decode import VideoReader
from avatars_app.bundle.encode import write_video
from avatars_app.bundle.storage import PARTIAL_PREFIX
from avatars_app.demo import ensure_demo_avatar
from avatars_app.models import Avatar
from avatars_app.services import avatar_folder, build_options, bundle_location, prepare_build
from avatars_app.tasks import queue_build
from realtime.avatar.format import BUNDLE_VERSION, FRAMES_FILE, UnsupportedBundle
from realtime.avatar.reader import AvatarBundle
from tests.fixtures.tenancy import key_client
from tests.fixtures.videos import FAST, TestVideo, assert_bundle_matches, moving_astronaut, upload


def _options(**overrides) -> BuildOptions:
    return dataclasses.replace(build_options(Avatar(fps=25)), **overrides)


def _build(video: TestVideo, folder: Path, **overrides) -> AvatarBundle:
    bundle_folder, _ = build_bundle(video.path, folder, "ab" * 32, _options(**overrides))
    return AvatarBundle.open(bundle_folder)


def test_bundle_matches_the_moving_face(astronaut_video, tmp_path, settings):
    bundle = _build(astronaut_video, tmp_path / "avatar")
    assert_bundle_matches(bundle, astronaut_video)
    assert bundle.path.name == f"{BUNDLE_VERSION}-{'ab' * 6}"
    # A still smile that never speaks: the only warning is the mouth atlas asking for footage of speech.
    (warning,) = map(str, bundle.manifest.warnings)
    assert warning.startswith("The footage shows few mouth shapes") and "Record at least 20 seconds" in warning
    assert [p.name for p in (tmp_path / "avatar").iterdir()] == [bundle.path.name]  # no partial folder left


def test_rotation_metadata_is_honoured(tmp_path):
    """A phone's portrait video: pixels stored sideways plus a display matrix. Ignoring the matrix would leave
    the face lying on its side."""
    size, fps, count = (240, 320), 25, 50  # upright: 240 wide, 320 tall
    matrices = [synthetic.placement((120 + 20 * math.sin(i / 8), 160), 0.45) for i in range(count)]
    stored = (np.ascontiguousarray(np.rot90(synthetic.render(size, [m]), -1)) for m in matrices)
    path = write_video(tmp_path / "portrait.mp4", stored, fps, rotation=90, options=FAST)
    video = TestVideo(
        path,
        fps,
        [synthetic.map_box(m, synthetic.ASTRONAUT_FACE) for m in matrices],
        [synthetic.map_point(m, synthetic.ASTRONAUT_MOUTH) for m in matrices],
    )
    bundle = _build(video, tmp_path / "avatar")
    assert (bundle.manifest.width, bundle.manifest.height) == size
    assert_bundle_matches(bundle, video)


def test_variable_frame_rate_is_resampled_by_presentation_time(tmp_path):
    """Source frames at irregular times, each with its index painted as a grey level; output frame k must show
    the last source frame whose time is at or before k/25 s."""
    times = [0.0, 0.013, 0.09, 0.1, 0.21, 0.35, 0.36, 0.37, 0.52, 0.61]
    frames = [np.full((240, 320, 3), 20 + 20 * i, np.uint8) for i in range(len(times))]
    path = write_video(tmp_path / "vfr.mkv", frames, 30, times=times, options=FAST)
    with VideoReader(path, _options().limits) as reader:
        levels = [round((float(f[100:140, 140:180].mean()) - 20) / 20) for f in reader.frames(25)]
    last_duration = Fraction(1, 30)  # the encoder's nominal frame duration for the last frame
    end = Fraction(times[-1]).limit_denominator(1000) + last_duration
    expected = [max(i for i, t in enumerate(times) if t <= k / 25 + 1e-9) for k in range(math.ceil(end * 25))]
    assert levels == expected


def test_oversized_input_is_downscaled(tmp_path, settings):
    video = moving_astronaut(tmp_path / "big.mp4", size=(640, 480), seconds=2, scale=1.0)
    bundle = _build(video, tmp_path / "avatar", limits=dataclasses.replace(_options().limits, max_side=320))
    assert (bundle.manifest.width, bundle.manifest.height) == (320, 240)
    assert_bundle_matches(bundle, video, scale=0.5)


# --- the task, run in this process (no worker): upload → queued → built ---


@pytest.fixture
def built_avatar(world_a, astronaut_video, eager_builds, django_capture_on_commit_callbacks) -> Avatar:
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(key_client(world_a.raw_key), astronaut_video.path)
    assert response.status_code == 201, response.json()
    return Avatar.objects.get(pk=response.json()["id"])


def test_upload_is_built_and_reported_ready(built_avatar, world_a, astronaut_video, settings):
    body = key_client(world_a.raw_key).get(f"/api/v1/avatars/{built_avatar.pk}/").json()
    assert body["status"] == "ready", body
    assert body["progress"] == 100 and body["stage"] == "ready" and body["error"] == ""
    assert (body["frame_count"], body["width"], body["height"]) == (astronaut_video.frame_count, 320, 240)
    assert body["source_checksum"] == built_avatar.source_checksum and len(body["source_checksum"]) == 64
    folder = bundle_location(built_avatar)
    assert folder == Path(settings.MEDIA_ROOT) / "avatars" / str(world_a.tenant.pk) / str(built_avatar.pk) / (
        f"{BUNDLE_VERSION}-{built_avatar.source_checksum[:12]}"
    )
    assert_bundle_matches(AvatarBundle.open(folder), astronaut_video)
    assert built_avatar.build_started_at <= built_avatar.build_finished_at


def test_reupload_of_the_same_file_reuses_the_bundle(
    built_avatar, world_a, astronaut_video, eager_builds, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(key_client(world_a.raw_key), astronaut_video.path, name="Same again")
    twin = Avatar.objects.get(pk=response.json()["id"])
    assert (twin.status, twin.stage, twin.frame_count) == ("ready", "reused", built_avatar.frame_count)
    assert twin.bundle_path != built_avatar.bundle_path  # its own folder: either avatar can be deleted
    first, second = bundle_location(built_avatar), bundle_location(twin)
    for name in (FRAMES_FILE, "landmarks.npy", "manifest.json", "extras/mouth_atlas/mouth_atlas.npz"):
        assert (first / name).stat().st_ino == (second / name).stat().st_ino  # linked, not rebuilt


def test_requeued_build_of_a_built_avatar_reuses_it_unless_forced(
    built_avatar, eager_builds, django_capture_on_commit_callbacks
):
    frames = bundle_location(built_avatar) / FRAMES_FILE
    inode = frames.stat().st_ino
    with django_capture_on_commit_callbacks(execute=True):
        queue_build(built_avatar)
    built_avatar.refresh_from_db()
    assert (built_avatar.status, built_avatar.stage) == ("ready", "reused")
    assert frames.stat().st_ino == inode
    with django_capture_on_commit_callbacks(execute=True):
        queue_build(built_avatar, force=True)
    built_avatar.refresh_from_db()
    assert (built_avatar.status, built_avatar.stage) == ("ready", "ready")
    assert (bundle_location(built_avatar) / FRAMES_FILE).stat().st_ino != inode


def test_rebuild_action_and_leftovers_of_a_killed_build(
    built_avatar, world_a, eager_builds, django_capture_on_commit_callbacks
):
    """What a killed build leaves (a partial folder, the row stuck in ``building``) is cleared by the rebuild
    the API queues."""
    leftover = avatar_folder(built_avatar) / f"{PARTIAL_PREFIX}killed"
    leftover.mkdir()
    (leftover / FRAMES_FILE).write_bytes(b"half a frame")
    Avatar.objects.filter(pk=built_avatar.pk).update(status="building", stage="decoding", progress=40)
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client(world_a.raw_key).post(f"/api/v1/avatars/{built_avatar.pk}/rebuild/", {"force": True})
    assert response.status_code == 202
    built_avatar.refresh_from_db()
    assert built_avatar.status == "ready" and built_avatar.progress == 100
    assert not leftover.exists()
    assert [p.name for p in avatar_folder(built_avatar).iterdir()] == [bundle_location(built_avatar).name]


def test_a_superseded_build_changes_nothing(built_avatar):
    stale = built_avatar.task_id
    newer = prepare_build(built_avatar)
    assert tasks.build_avatar.apply(args=[built_avatar.pk], task_id=stale).get() == "superseded"
    built_avatar.refresh_from_db()
    assert (built_avatar.status, built_avatar.task_id) == ("pending", newer)


def test_progress_writes_are_throttled(built_avatar, django_assert_num_queries):
    reporter = tasks.ProgressReporter(built_avatar.pk, built_avatar.task_id, interval=60)
    with django_assert_num_queries(2):  # the first call and the stage change; the 998 others are dropped
        for i in range(999):
            reporter("decoding", i / 1000)
        reporter("extras", 0.9)
    built_avatar.refresh_from_db()
    assert (built_avatar.stage, built_avatar.progress) == ("extras", 90)


def test_progress_of_a_superseded_build_stops_it(built_avatar):
    reporter = tasks.ProgressReporter(built_avatar.pk, "someone-else", interval=0)
    with pytest.raises(tasks.Superseded):
        reporter("decoding", 0.5)


def test_transient_errors_are_retried_then_reported(built_avatar, monkeypatch, settings, caplog):
    real = tasks.build_bundle
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("storage hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "build_bundle", flaky)
    task_id = prepare_build(built_avatar)
    tasks.build_avatar.apply(args=[built_avatar.pk], kwargs={"force": True}, task_id=task_id, throw=False)
    built_avatar.refresh_from_db()
    assert (built_avatar.status, len(calls)) == ("ready", 2)

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError("disk gone")

    settings.LIVEHUMAN = {"AVATAR_BUILD_MAX_RETRIES": 1}
    monkeypatch.setattr(tasks, "build_bundle", broken)
    calls.clear()
    task_id = prepare_build(built_avatar)
    tasks.build_avatar.apply(args=[built_avatar.pk], kwargs={"force": True}, task_id=task_id, throw=False)
    built_avatar.refresh_from_db()
    assert built_avatar.status == "failed" and len(calls) == 2
    assert "failed 2 times" in built_avatar.error
    # The OSError's own text (paths, library words) goes to the operator's log, never onto the tenant's row.
    assert "disk gone" not in built_avatar.error and "disk gone" in caplog.text


def test_time_limit_is_reported(built_avatar, monkeypatch, settings):
    settings.LIVEHUMAN = {"AVATAR_BUILD_TIME_LIMIT_S": 7}

    def slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "build_bundle", slow)
    task_id = prepare_build(built_avatar)
    tasks.build_avatar.apply(args=[built_avatar.pk], kwargs={"force": True}, task_id=task_id, throw=False)
    built_avatar.refresh_from_db()
    assert built_avatar.status == "failed"
    assert "longer than 7 s" in built_avatar.error


def test_queue_build_passes_time_limits_from_settings(
    world_a, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.LIVEHUMAN = {"AVATAR_BUILD_TIME_LIMIT_S": 300}
    avatar = Avatar.objects.create(tenant=world_a.tenant, name="x", source_video="x.mp4")
    sent = {}
    monkeypatch.setattr(tasks.build_avatar, "apply_async", lambda **kwargs: sent.update(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        task_id = queue_build(avatar)
    assert sent["task_id"] == task_id and sent["args"] == [avatar.pk]
    assert sent["soft_time_limit"] == 300 and sent["time_limit"] > 300 and sent["queue"] == "celery"
    avatar.refresh_from_db()
    assert (avatar.status, avatar.stage, avatar.task_id) == ("pending", "queued", task_id)


def test_demo_avatar_is_built_once(world_a):
    avatar = ensure_demo_avatar(world_a.tenant)
    assert avatar.status == "ready" and avatar.stage == "ready"
    bundle = AvatarBundle.open(bundle_location(avatar))
    assert bundle.kind == "photo" and bundle.manifest.frame_count == 1  # the portrait itself, built as a photo
    assert bundle.frame_count == len(bundle.landmarks) > 1  # shown as its idle loop
    assert (bundle.manifest.width, bundle.manifest.height) == (512, 512)
    x1, y1, x2, y2 = synthetic.ASTRONAUT_FACE
    cx, cy = bundle.lips["outer"][0].mean(0)
    assert x1 <= cx <= x2 and y1 <= cy <= y2
    assert avatar.source_video.name.endswith(".png") and avatar.source_size > 0
    again = ensure_demo_avatar(world_a.tenant)
    assert again.pk == avatar.pk and again.build_finished_at == avatar.build_finished_at
    assert Avatar.objects.filter(tenant=world_a.tenant).count() == 1


def test_an_outdated_bundle_is_refused_and_rebuild_avatars_builds_it_again(
    built_avatar, django_capture_on_commit_callbacks
):
    import json

    from django.core.management import call_command

    from avatars_app.services import has_current_bundle

    built_avatar.refresh_from_db()
    manifest = bundle_location(built_avatar) / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "version": 1}))  # as a bundle from before format 2
    assert not has_current_bundle(built_avatar)
    with pytest.raises(UnsupportedBundle, match="Rebuild the avatar"):
        AvatarBundle.open(bundle_location(built_avatar))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("rebuild_avatars", stdout=open(os.devnull, "w"))  # noqa: SIM115
    built_avatar.refresh_from_db()
    assert built_avatar.status == "ready" and has_current_bundle(built_avatar)
    assert AvatarBundle.open(bundle_location(built_avatar)).manifest.version == BUNDLE_VERSION


@pytest.mark.parametrize(("extension", "pil_format"), [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_a_portrait_photo_builds_as_a_photo_avatar(
    world_a, tmp_path, eager_builds, django_capture_on_commit_callbacks, extension, pil_format
):
    from PIL import Image

    path = tmp_path / f"portrait.{extension}"
    portrait = cv2.resize(skimage.data.astronaut(), (768, 768))
    Image.fromarray(portrait).save(path, format=pil_format, quality=92)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(key_client(world_a.raw_key), path)
    assert response.status_code == 201, response.json()
    avatar = Avatar.objects.get(pk=response.json()["id"])
    assert avatar.status == "ready", avatar.error
    bundle = AvatarBundle.open(bundle_location(avatar))
    assert (bundle.kind, bundle.manifest.frame_count, bundle.manifest.kept_span) == ("photo", 1, (0.0, 0.0))
    assert (bundle.manifest.width, bundle.manifest.height) == (768, 768)
    assert np.abs(bundle.frame(0).astype(int) - portrait).mean() < 4
    cx, cy = bundle.lips["outer"][0].mean(0)  # the portrait's lips, scaled by 1.5
    assert abs(cx - 223 * 1.5) < 8 and abs(cy - 147 * 1.5) < 8
    x1, y1, x2, y2 = bundle.mouth_boxes[0]
    assert x1 < cx < x2 and y1 < cy < y2


def test_a_photo_without_a_face_fails_clearly(world_a, tmp_path, eager_builds, django_capture_on_commit_callbacks):
    from PIL import Image

    path = tmp_path / "wall.png"
    gradient = np.linspace(0, 255, 320 * 240 * 3).reshape(240, 320, 3).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(key_client(world_a.raw_key), path)
    assert response.status_code == 201, response.json()
    avatar = Avatar.objects.get(pk=response.json()["id"])
    assert avatar.status == "failed" and avatar.error.startswith("No face was found in the photo"), avatar.error
