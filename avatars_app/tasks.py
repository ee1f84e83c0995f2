"""``build_avatar``: turn an Avatar's uploaded video into its bundle, with progress and errors on the row.

Delivery is at-least-once (``acks_late`` + ``reject_on_worker_lost``): a worker killed mid-build gives the
message back to the broker and the next delivery starts the build again from the upload, after removing
the killed build's partial folder. Every write to the row is conditional on the row still naming this task
(``task_id``), so a build that was superseded by a newer request cannot overwrite the newer one's state.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from celery import Task, shared_task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from livehuman_site.conf import livehuman_settings
from realtime.avatar.format import Manifest
from realtime.avatar.messages import Message
from realtime.metrics import AVATAR_BUILD_SECONDS, AVATAR_BUILDS

from .bundle.builder import build_bundle, reuse_bundle
from .bundle.errors import BadVideo
from .bundle.storage import discard_other_bundles, discard_partials
from .models import Avatar
from .services import (
    STORAGE_QUOTA_MESSAGE,
    avatar_folder,
    build_options,
    file_checksum,
    find_reusable_bundle,
    prepare_build,
    tenant_storage_bytes,
)

logger = logging.getLogger(__name__)
_TIME_LIMIT_GRACE_S = 60  # between the soft limit (the task records the failure) and the hard kill

# Worth another attempt: storage hiccups (NFS, a full disk being cleaned) and a locked or restarting database.
TRANSIENT_ERRORS = (OSError, OperationalError)
_RETRY_BASE_DELAY_S = 10
UNEXPECTED_FAILURE = gettext_noop("The build failed unexpectedly; the error has been logged for the operator.")


class Superseded(Exception):
    """The row no longer names this task: a newer build was queued, or the avatar was deleted."""


class ProgressReporter:
    """Writes stage and percent to the row: on every stage change, otherwise at most once per interval."""

    def __init__(self, avatar_id: int, task_id: str, interval: float) -> None:
        self.avatar_id = avatar_id
        self.task_id = task_id
        self.interval = interval
        self._stage = ""
        self._percent = -1
        self._saved_at = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        percent = max(0, min(99, int(fraction * 100)))  # 100 only when the bundle is in place
        now = time.monotonic()
        if stage == self._stage and (percent == self._percent or now - self._saved_at < self.interval):
            return
        if stage != self._stage:
            logger.info("Avatar %s: %s", self.avatar_id, stage)
        self._stage, self._percent, self._saved_at = stage, percent, now
        _update(self.avatar_id, self.task_id, stage=stage, progress=percent)


def _update(avatar_id: int, task_id: str, **fields: object) -> None:
    if not Avatar.objects.filter(pk=avatar_id, task_id=task_id).update(**fields):
        raise Superseded


@shared_task(bind=True, name="avatars_app.build_avatar", acks_late=True, reject_on_worker_lost=True)
def build_avatar(self, avatar_id: int, force: bool = False) -> str:
    """Build (or reuse) the bundle of avatar ``avatar_id``; returns the outcome: ready, failed or superseded.
    Queue it through ``queue_build``, which sets the time limits and the build id it checks. Each attempt is
    counted in the worker's metrics by outcome ("retry" and "error" for one that raised)."""
    started = time.monotonic()
    outcome = "error"
    try:
        outcome = _build_avatar(self, avatar_id, force)
        return outcome
    except Retry:
        outcome = "retry"
        raise
    finally:
        AVATAR_BUILDS.labels(outcome).inc()
        AVATAR_BUILD_SECONDS.labels(outcome).observe(time.monotonic() - started)


def _build_avatar(self: Task, avatar_id: int, force: bool) -> str:
    task_id = self.request.id
    claimed = Avatar.objects.filter(Q(task_id=task_id) | Q(task_id=""), pk=avatar_id).update(
        task_id=task_id,
        status=Avatar.Status.BUILDING,
        stage="starting",
        progress=0,
        error="",
        error_message={},
        build_started_at=timezone.now(),
        build_finished_at=None,
    )
    if not claimed:
        return "superseded"
    avatar = Avatar.objects.get(pk=avatar_id)
    try:
        folder, manifest, stage = _build_or_reuse(avatar, task_id, force)
        _update(
            avatar_id,
            task_id,
            status=Avatar.Status.READY,
            stage=stage,
            progress=100,
            error="",
            error_message={},
            warnings="\n".join(map(str, manifest.warnings)),
            warning_messages=[warning.to_json() for warning in manifest.warnings],
            bundle_path=folder.relative_to(Path(settings.MEDIA_ROOT)).as_posix(),
            frame_count=manifest.frame_count,
            width=manifest.width,
            height=manifest.height,
            build_finished_at=timezone.now(),
        )
    except Superseded:
        logger.info("Avatar %s: build %s superseded, stopped", avatar_id, task_id)
        return "superseded"
    except BadVideo as exc:
        return _fail(avatar_id, task_id, exc.message)
    except SoftTimeLimitExceeded:
        template = gettext_noop("The build took longer than %(limit)d s (AVATAR_BUILD_TIME_LIMIT_S).")
        return _fail(avatar_id, task_id, Message(template, {"limit": livehuman_settings.AVATAR_BUILD_TIME_LIMIT_S}))
    except TRANSIENT_ERRORS as exc:
        return _retry_or_fail(self, avatar_id, exc)
    except Exception:
        # The exception's text is for the operator's log (below), never for the tenant who reads the row.
        _fail(avatar_id, task_id, Message(UNEXPECTED_FAILURE))
        raise
    return "ready"


def _build_or_reuse(avatar: Avatar, task_id: str, force: bool) -> tuple[Path, Manifest, str]:
    folder = avatar_folder(avatar)
    discard_partials(folder)  # what a killed earlier attempt left; we hold the build now
    if not avatar.source_video or not Path(avatar.source_video.path).is_file():
        raise BadVideo("missing_source", gettext_noop("The uploaded video is missing from storage. Upload it again."))
    source = Path(avatar.source_video.path)
    if not avatar.source_checksum:
        avatar.source_checksum, avatar.source_size = file_checksum(source)
        _update(avatar.pk, task_id, source_checksum=avatar.source_checksum, source_size=avatar.source_size)
    existing = None if force else find_reusable_bundle(avatar)
    if existing is not None:
        bundle, manifest = reuse_bundle(existing, folder, avatar.source_checksum)
        stage = "reused"
    else:
        reporter = ProgressReporter(avatar.pk, task_id, livehuman_settings.AVATAR_PROGRESS_INTERVAL_S)
        _check_storage(avatar)
        bundle, manifest = build_bundle(source, folder, avatar.source_checksum, build_options(avatar), reporter)
        stage = "ready"
        if tenant_storage_bytes(avatar.tenant_id) > avatar.tenant.max_storage_bytes:
            shutil.rmtree(bundle, ignore_errors=True)  # the quota holds: the new bundle does not stay
            raise _over_quota(avatar)
    discard_other_bundles(folder, keep=bundle.name)
    return bundle, manifest, stage


def _check_storage(avatar: Avatar) -> None:
    """A tenant at its disk quota builds nothing: checked before the build writes a byte."""
    if tenant_storage_bytes(avatar.tenant_id) >= avatar.tenant.max_storage_bytes:
        raise _over_quota(avatar)


def _over_quota(avatar: Avatar) -> BadVideo:
    return BadVideo("storage_quota", STORAGE_QUOTA_MESSAGE, limit=avatar.tenant.max_storage_mb)


def _retry_or_fail(task: Task, avatar_id: int, exc: Exception) -> str:
    """Retry after a storage or database error, later each time; record the failure when out of retries."""
    retries = livehuman_settings.AVATAR_BUILD_MAX_RETRIES
    task_id = task.request.id
    if task.request.retries >= retries:
        logger.warning("Avatar %s: build failed %d times, last: %r", avatar_id, retries + 1, exc)
        template = gettext_noop(
            "The build failed %(attempts)d times on a storage or database error; the error has been logged for "
            "the operator."
        )
        return _fail(avatar_id, task_id, Message(template, {"attempts": retries + 1}))
    try:
        # The error itself (a path, a database message) is for the log below, not for the tenant's row.
        _update(avatar_id, task_id, status=Avatar.Status.PENDING, stage="retrying", error="", error_message={})
    except Superseded:  # e.g. a newer build removed this one's folder under it
        return "superseded"
    logger.warning("Avatar %s: build failed (%s), retrying", avatar_id, exc)
    delay = _RETRY_BASE_DELAY_S * 2**task.request.retries
    raise task.retry(exc=exc, countdown=delay, max_retries=retries) from exc


def _fail(avatar_id: int, task_id: str, message: Message) -> str:
    """Record why the build stopped: the message in English (for logs) and untranslated (shown in each reader's
    language). The upload and any earlier bundle stay: nothing else is lost."""
    logger.info("Avatar %s: build failed: %s", avatar_id, message)
    try:
        _update(
            avatar_id,
            task_id,
            status=Avatar.Status.FAILED,
            stage="failed",
            error=str(message),
            error_message=message.to_json(),
            build_finished_at=timezone.now(),
        )
    except Superseded:
        return "superseded"
    return "failed"


def queue_build(avatar: Avatar, *, force: bool = False) -> str:
    """Queue ``build_avatar`` for this avatar once the current transaction commits (so the worker sees the row).
    ``force`` rebuilds even when a bundle of the same source exists."""
    task_id = prepare_build(avatar)
    limit = livehuman_settings.AVATAR_BUILD_TIME_LIMIT_S
    transaction.on_commit(
        lambda: build_avatar.apply_async(
            args=[avatar.pk],
            kwargs={"force": force},
            task_id=task_id,
            queue=livehuman_settings.AVATAR_BUILD_QUEUE,
            soft_time_limit=limit,
            time_limit=limit + _TIME_LIMIT_GRACE_S,
        )
    )
    return task_id
