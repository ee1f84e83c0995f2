"""Avatar business rules: tenant quotas, registering an upload, queueing its build, reusing built bundles."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.models import Tenant
from realtime.avatar.format import Manifest, UnsupportedBundle
from realtime.avatar.reader import AvatarBundle

from .bundle.builder import BuildOptions
from .bundle.decode import DecodeLimits
from .bundle.storage import bundle_folder_name
from .models import Avatar

_CHUNK = 1024 * 1024
# Said at upload (translated at once) and by a build that would not fit (stored untranslated, with its limit).
STORAGE_QUOTA_MESSAGE = gettext_noop(
    "This tenant's files would exceed its disk quota of %(limit)d MB. Delete avatars or voices first."
)


def check_upload_quota(tenant: Tenant, size: int) -> None:
    """Refuse an upload larger than the tenant's limit, or one that would take it past its disk quota,
    before anything is stored."""
    if size > tenant.max_upload_bytes:
        raise ValidationError(
            _("The file is %(size).1f MB; this tenant's limit is %(limit)d MB.")
            % {"size": size / 1024 / 1024, "limit": tenant.max_upload_mb},
            code="upload_quota",
        )
    if tenant_storage_bytes(tenant) + size > tenant.max_storage_bytes:
        raise ValidationError(storage_quota_message(tenant), code="storage_quota")


MULTIPART_OVERHEAD = 64 * 1024  # the other fields and part headers: a file just under the limit still passes


def check_declared_upload(tenant: Tenant, meta: dict[str, Any]) -> None:
    """Refuse a multipart body whose declared ``Content-Length`` is too large for the tenant's upload limit or the
    room left under its disk quota, before it is parsed into files (``check_upload_quota``'s error).

    daphne receives a whole body before the application runs, so this saves parsing and storing it, not
    receiving it: a proxy limit (nginx ``client_max_body_size``) stops it at the edge. Bodies without a length
    (chunked) are checked file by file later."""
    if not str(meta.get("CONTENT_TYPE", "")).startswith("multipart/"):
        return
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    check_upload_quota(tenant, max(0, length - MULTIPART_OVERHEAD))


def tenant_storage_bytes(tenant: Tenant | int) -> int:
    """Bytes the tenant stores now: its uploads (MEDIA_ROOT/tenants/<id>) and its avatar bundles
    (MEDIA_ROOT/avatars/<id>)."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    media = Path(settings.MEDIA_ROOT)
    total = 0
    for root in (media / "tenants" / str(tenant_id), media / "avatars" / str(tenant_id)):
        if root.is_dir():
            total += sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())
    return total


def storage_quota_message(tenant: Tenant) -> str:
    return _(STORAGE_QUOTA_MESSAGE) % {"limit": tenant.max_storage_mb}


def check_avatar_quota(tenant: Tenant) -> None:
    """Refuse a new avatar when the tenant already has as many as it may."""
    if Avatar.objects.for_tenant(tenant).count() >= tenant.max_avatars:
        raise ValidationError(
            _("This tenant already has %(count)d avatars, its limit.") % {"count": tenant.max_avatars},
            code="avatar_quota",
        )


def file_checksum(source: File | IO[bytes] | Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks; an open file is rewound for whoever stores it next."""
    digest, size = hashlib.sha256(), 0
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return file_checksum(File(handle))
    if not isinstance(source, File):
        source = File(source)
    source.seek(0)
    for chunk in source.chunks(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    source.seek(0)
    return digest.hexdigest(), size


def record_source(avatar: Avatar, upload: File) -> None:
    """Set the checksum and size of a newly uploaded source video on the (unsaved) avatar."""
    avatar.source_checksum, avatar.source_size = file_checksum(upload)


def avatar_folder(avatar: Avatar) -> Path:
    """``MEDIA_ROOT/avatars/<tenant>/<avatar>``: all bundles of one avatar, and its killed builds' leftovers."""
    return Path(settings.MEDIA_ROOT) / "avatars" / str(avatar.tenant_id) / str(avatar.pk)


def bundle_location(avatar: Avatar) -> Path:
    """The folder of the avatar's current bundle (what ``AvatarBundle.open`` takes)."""
    if not avatar.bundle_path:
        raise UnsupportedBundle(f"Avatar {avatar.pk} ({avatar.name}) has no bundle yet: it is {avatar.status}")
    return Path(settings.MEDIA_ROOT) / avatar.bundle_path


def has_current_bundle(avatar: Avatar) -> bool:
    """Whether the avatar is ready with a bundle this code reads (an older bundle version needs a rebuild)."""
    if not avatar.is_ready or not avatar.bundle_path:
        return False
    try:
        Manifest.read(bundle_location(avatar))
    except UnsupportedBundle:
        return False
    return True


def build_options(avatar: Avatar) -> BuildOptions:
    s = livehuman_settings
    return BuildOptions(
        fps=avatar.fps,
        limits=DecodeLimits(
            max_side=s.AVATAR_MAX_SIDE,
            min_source_side=s.AVATAR_MIN_SOURCE_SIDE,
            max_source_side=s.AVATAR_MAX_SOURCE_SIDE,
            max_aspect=s.AVATAR_MAX_ASPECT,
            max_seconds=s.AVATAR_MAX_SECONDS,
        ),
        count_faces_every=max(1, s.AVATAR_DETECT_EVERY),
        min_face_ratio=s.AVATAR_MIN_FACE_RATIO,
        max_gap_seconds=s.AVATAR_MAX_GAP_S,
        min_span_seconds=s.AVATAR_MIN_SECONDS,
    )


def find_reusable_bundle(avatar: Avatar) -> Path | None:
    """A valid bundle already built from the same source at the same fps: this avatar's own (a re-queued
    build that had finished), else one of the same tenant's ready avatars (the same file uploaded again).
    Bundles are never shared across tenants."""
    candidates = [avatar_folder(avatar) / bundle_folder_name(avatar.source_checksum)]
    twins = (
        Avatar.objects.filter(tenant_id=avatar.tenant_id, source_checksum=avatar.source_checksum)
        .filter(status=Avatar.Status.READY)
        .exclude(pk=avatar.pk)
        .exclude(bundle_path="")
        .values_list("bundle_path", flat=True)
    )
    candidates += [Path(settings.MEDIA_ROOT) / path for path in twins]
    for folder in candidates:
        try:
            manifest = AvatarBundle.open(folder).manifest
        except UnsupportedBundle:
            continue
        if manifest.fps == avatar.fps and manifest.source_checksum == avatar.source_checksum:
            return folder
    return None


def prepare_build(avatar: Avatar) -> str:
    """Mark the avatar pending under a new build id and return it. The id is the Celery task id: a build that
    no longer holds it (superseded by a newer request) stops at its next progress write."""
    task_id = str(uuid.uuid4())
    Avatar.objects.filter(pk=avatar.pk).update(
        status=Avatar.Status.PENDING,
        progress=0,
        stage="queued",
        error="",
        error_message={},
        task_id=task_id,
        build_started_at=None,
        build_finished_at=None,
    )
    avatar.refresh_from_db()
    return task_id


def delete_file_later(field_file: Any) -> None:
    """Remove a stored file once the current transaction commits (a rolled-back change keeps it)."""
    storage, name = field_file.storage, field_file.name
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def delete_avatar_files_later(avatar: Avatar) -> None:
    """Remove an avatar's bundles and uploaded source once the deletion of its row commits.

    The paths are taken now (Django clears the instance's pk after the delete). Bundles reused by another avatar
    were hard-linked into that avatar's own folder, so removing this folder never takes files another avatar reads.
    """
    folder = avatar_folder(avatar)
    storage, source_name = avatar.source_video.storage, avatar.source_video.name

    def remove() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        if source_name:
            storage.delete(source_name)

    transaction.on_commit(remove)  # a rolled-back delete keeps its files
