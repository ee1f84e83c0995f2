"""Every way an upload goes wrong ends with a clear error on the Avatar row and in the API, and nothing else
is lost: the upload stays, no partial bundle is left, other avatars and their bundles are untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from avatars_app.bundle import synthetic
from avatars_app.bundle.encode import write_video
from avatars_app.models import Avatar
from avatars_app.services import avatar_folder, bundle_location
from realtime.avatar.format import FRAMES_FILE
from realtime.avatar.reader import AvatarBundle
from tests.fixtures.callers import assert_error_body
from tests.fixtures.tenancy import key_client
from tests.fixtures.videos import (
    FAST,
    assert_bundle_matches,
    audio_only,
    face_part_time,
    moving_astronaut,
    no_face,
    not_a_video,
    plain_clip,
    truncated,
    two_faces,
    upload,
    zero_frames,
)


def _truncated_index_at_end(folder: Path) -> Path:
    """MP4 writes its index (moov) last: an interrupted upload has no index at all."""
    return truncated(moving_astronaut(folder / "whole.mp4").path, folder / "cut.mp4", keep=0.6)


def _truncated_index_first(folder: Path) -> Path:
    """With the index first (faststart), the cut file opens but its frames run out early."""
    whole = write_video(
        folder / "whole.mp4",
        (synthetic.render((320, 240), [synthetic.placement((160 + i, 120), 0.5)]) for i in range(75)),
        25,
        options={**FAST, "movflags": "faststart"},
    )
    return truncated(whole, folder / "cut.mp4", keep=0.5)


# Refused when uploaded (avatars_app.uploads): a field error, nothing stored, no build.
REFUSED_AT_UPLOAD: dict[str, tuple[Callable[[Path], Path], str]] = {
    "not a video": (lambda d: not_a_video(d / "notes.mp4"), "is not a video or photo"),
    "truncated, index at the end": (_truncated_index_at_end, "damaged or truncated"),
    "truncated, index first": (_truncated_index_first, "damaged or truncated"),
    "zero frames": (lambda d: zero_frames(d / "empty.avi"), "contains no frames"),
    "audio only": (lambda d: audio_only(d / "voice.m4a"), "no video stream"),
}
BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "no face": (lambda d: no_face(d / "wall.mp4"), "No face was found"),
    "too few faces": (lambda d: face_part_time(d / "brief.mp4", share=0.3), "A face was found in only"),
    "too small": (lambda d: plain_clip(d / "tiny.mp4", (96, 96)), "96×96 pixels"),
    "too large": (lambda d: plain_clip(d / "huge.mp4", (4224, 576), frames=3), "4224×576 pixels"),
    "too wide": (lambda d: plain_clip(d / "strip.mp4", (1024, 128)), "aspect ratio of at most 4:1"),
}


def _bundle_snapshot(avatar: Avatar) -> tuple[str, int]:
    avatar.refresh_from_db()
    folder = bundle_location(avatar)
    AvatarBundle.open(folder)  # still complete and valid
    return avatar.status, (folder / FRAMES_FILE).stat().st_ino


def _upload_and_build(client, path: Path, capture) -> dict:
    with capture(execute=True):
        response = upload(client, path)
    assert response.status_code == 201, response.content
    return client.get(f"/api/v1/avatars/{response.json()['id']}/").json()


@pytest.mark.parametrize("case", list(REFUSED_AT_UPLOAD))
def test_an_upload_that_is_no_video_is_refused_at_once(case, world_a, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    make, expected = REFUSED_AT_UPLOAD[case]
    response = upload(key_client(world_a.raw_key), make(tmp_path))
    assert response.status_code == 400
    assert expected in assert_error_body(response, "invalid")["fields"]["source_video"][0]
    assert not Avatar.objects.exists()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_upload_fails_with_a_clear_error(
    case, world_a, ready_avatar, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    make, expected = BAD_INPUTS[case]
    before = _bundle_snapshot(ready_avatar)
    client = key_client(world_a.raw_key)

    body = _upload_and_build(client, make(tmp_path), django_capture_on_commit_callbacks)

    assert body["status"] == "failed", body
    assert expected in body["error"], body["error"]
    assert body["stage"] == "failed" and body["frame_count"] == 0
    failed = Avatar.objects.get(pk=body["id"])
    assert failed.error == body["error"]
    assert Path(failed.source_video.path).is_file()  # the upload is kept, to inspect or rebuild
    assert not failed.bundle_path
    folder = avatar_folder(failed)
    assert not folder.exists() or not any(folder.iterdir())  # no partial or half-valid bundle
    assert _bundle_snapshot(ready_avatar) == before  # the other avatar is untouched


def test_too_long_video_names_the_limit(world_a, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks):
    settings.LIVEHUMAN = {"AVATAR_MAX_SECONDS": 1}
    settings.LANGUAGE_CODE = "en"
    video = moving_astronaut(tmp_path / "long.mp4", seconds=3)
    body = _upload_and_build(key_client(world_a.raw_key), video.path, django_capture_on_commit_callbacks)
    assert body["status"] == "failed"
    assert "3.0 s long; the limit is 1 s" in body["error"]


def test_several_faces_use_the_largest_and_say_so(
    world_a, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    video = two_faces(tmp_path / "two.mp4")
    body = _upload_and_build(key_client(world_a.raw_key), video.path, django_capture_on_commit_callbacks)
    assert body["status"] == "ready", body
    assert "2 faces are visible at the same time" in body["warnings"]
    bundle = AvatarBundle.open(bundle_location(Avatar.objects.get(pk=body["id"])))
    assert_bundle_matches(bundle, video)  # every box on the large face, none on the small one
    assert [str(warning) for warning in bundle.manifest.warnings] == body["warnings"].splitlines()


def test_failed_rebuild_from_a_new_upload_keeps_the_old_bundle(
    world_a, ready_avatar, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    old_folder = bundle_location(ready_avatar)
    client = key_client(world_a.raw_key)
    with django_capture_on_commit_callbacks(execute=True), no_face(tmp_path / "wall.mp4").open("rb") as handle:
        response = client.patch(f"/api/v1/avatars/{ready_avatar.pk}/", {"source_video": handle}, format="multipart")
    assert response.status_code == 200, response.content
    body = client.get(f"/api/v1/avatars/{ready_avatar.pk}/").json()
    assert body["status"] == "failed" and "No face was found" in body["error"]
    AvatarBundle.open(old_folder)  # the bundle built from the earlier upload is still whole


def test_upload_over_the_size_quota_is_refused_before_storing(world_a, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    world_a.tenant.max_upload_mb = 1
    world_a.tenant.save()
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (1024 * 1024 + 1))
    response = upload(key_client(world_a.raw_key), big)
    assert response.status_code == 400
    error = assert_error_body(response, "invalid")
    assert "limit is 1 MB" in " ".join(error["fields"]["source_video"])
    assert not Avatar.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "tenants").exists()  # nothing stored


def test_upload_over_the_avatar_quota_is_refused(world_a, ready_avatar, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    world_a.tenant.max_avatars = 1
    world_a.tenant.save()
    response = upload(key_client(world_a.raw_key), moving_astronaut(tmp_path / "a.mp4", seconds=1).path)
    assert response.status_code == 400
    assert "already has 1 avatars" in assert_error_body(response, "invalid")["message"]
    assert list(Avatar.objects.all()) == [ready_avatar]


def test_unknown_fps_is_refused(world_a, tmp_path):
    response = upload(key_client(world_a.raw_key), moving_astronaut(tmp_path / "a.mp4", seconds=1).path, fps=24)
    assert response.status_code == 400
    assert "fps" in assert_error_body(response, "invalid")["fields"]
