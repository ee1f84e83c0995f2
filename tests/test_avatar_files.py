"""Deleting an avatar removes its bundle and source from MEDIA_ROOT, and only its own."""

from pathlib import Path

from avatars_app.models import Avatar
from avatars_app.services import avatar_folder


def test_deleting_an_avatar_removes_its_bundle_and_source(ready_avatar, settings, django_capture_on_commit_callbacks):
    folder = avatar_folder(ready_avatar)
    source = Path(ready_avatar.source_video.path)
    bundle = Path(settings.MEDIA_ROOT) / ready_avatar.bundle_path
    assert (bundle / "manifest.json").exists() and source.exists()

    with django_capture_on_commit_callbacks(execute=True):
        ready_avatar.delete()

    assert not folder.exists()
    assert not source.exists()
    assert not Avatar.objects.filter(pk=ready_avatar.pk).exists()


def test_a_rolled_back_delete_keeps_the_files(ready_avatar, django_capture_on_commit_callbacks):
    folder = avatar_folder(ready_avatar)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ready_avatar.delete()
    assert callbacks, "the file removal waits for the commit"
    assert folder.exists()
