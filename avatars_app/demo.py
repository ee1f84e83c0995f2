"""The demo avatar: a short clip of the astronaut portrait that ships in scikit-image, built like any upload.

The clip gives the still photograph a gentle head motion (a slow sway, tilt and breathing scale), so the idle
loop looks alive. It is registered as an upload and built by the same ``build_avatar`` task; ``apply`` runs
that task in this process, so setting up needs no running worker.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from django.core.files import File
from django.db import transaction

from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.models import Tenant

from .bundle import synthetic
from .bundle.encode import write_video
from .models import Avatar
from .services import check_avatar_quota, check_upload_quota, has_current_bundle, prepare_build, record_source
from .tasks import build_avatar

DEMO_AVATAR_NAME = "Astronaut (demo)"
DEMO_FILE_NAME = "astronaut-demo.mp4"
DEMO_SECONDS = 4
DEMO_SIZE = (512, 512)
_SWAY_PX = 4.0
_TILT_DEG = 1.5
_BREATH = 0.012
_ZOOM = 1.1  # enough that sway and tilt never uncover the frame's edges


def demo_frames(fps: int) -> Iterator[np.ndarray]:
    """One full sway cycle, so the clip loops without a jump (the idle loop also plays it back and forth)."""
    count = DEMO_SECONDS * fps
    width, height = DEMO_SIZE
    x1, y1, x2, y2 = synthetic.ASTRONAUT_FACE
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    for index in range(count):
        phase = 2 * math.pi * index / count
        matrix = synthetic.placement(
            (centre[0] + _SWAY_PX * math.sin(phase), centre[1] + 0.5 * _SWAY_PX * math.sin(2 * phase)),
            scale=_ZOOM + _BREATH * math.sin(phase),
            angle=_TILT_DEG * math.sin(phase + 0.7),
        )
        yield synthetic.render((width, height), [matrix])


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
    fps = livehuman_settings.DEFAULT_FPS
    with tempfile.TemporaryDirectory() as folder:
        clip = write_video(Path(folder) / DEMO_FILE_NAME, demo_frames(fps), fps, options={"crf": "18"})
        with clip.open("rb") as handle, transaction.atomic():
            upload = File(handle, name=DEMO_FILE_NAME)
            check_avatar_quota(tenant)
            check_upload_quota(tenant, upload.size)
            avatar = Avatar(tenant=tenant, name=DEMO_AVATAR_NAME, fps=fps)
            record_source(avatar, upload)
            avatar.source_video.save(DEMO_FILE_NAME, upload, save=False)
            avatar.save()
    return avatar
