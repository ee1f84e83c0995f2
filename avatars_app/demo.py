"""The demo avatar: scikit-image's public-domain astronaut portrait, uploaded as a photo and built like any
upload (kind "photo": the engine gives the still face its blinks and head and breathing motion).

It is registered as an upload and built by the same ``build_avatar`` task; ``apply`` runs that task in this
process, so setting up needs no running worker.
"""

from __future__ import annotations

import io

import skimage.data
from django.core.files import File
from django.db import transaction
from PIL import Image

from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.models import Tenant

from .models import Avatar
from .services import check_avatar_quota, check_upload_quota, has_current_bundle, prepare_build, record_source
from .tasks import build_avatar

DEMO_AVATAR_NAME = "Astronaut (demo)"
DEMO_FILE_NAME = "astronaut-demo.png"


def ensure_demo_avatar(tenant: Tenant) -> Avatar:
    """The tenant's demo avatar, built. Idempotent: a ready one with a current bundle is returned as it is; an
    unfinished, failed or outdated one is built again, and only a missing one is created (counting against the
    tenant's quotas like an upload)."""
    avatar = Avatar.objects.filter(tenant=tenant, name=DEMO_AVATAR_NAME).order_by("pk").first()
    if avatar is not None and has_current_bundle(avatar):
        return avatar
    if avatar is None:
        avatar = _register_demo_upload(tenant)
    task_id = prepare_build(avatar)
    build_avatar.apply(args=[avatar.pk], task_id=task_id, throw=False)  # a failure is on the row
    avatar.refresh_from_db()
    if not avatar.is_ready:
        raise RuntimeError(f"The demo avatar could not be built: {avatar.error or avatar.status}")
    return avatar


def _register_demo_upload(tenant: Tenant) -> Avatar:
    png = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(png, format="PNG")
    png.seek(0)
    upload = File(png, name=DEMO_FILE_NAME)
    with transaction.atomic():
        check_avatar_quota(tenant)
        check_upload_quota(tenant, upload.size)
        avatar = Avatar(tenant=tenant, name=DEMO_AVATAR_NAME, fps=livehuman_settings.DEFAULT_FPS)
        record_source(avatar, upload)
        avatar.source_video.save(DEMO_FILE_NAME, upload, save=False)
        avatar.save()
    return avatar
