"""What the operator reads for a build's stage: the row stores a plain word ("decoding", "ready") that the build
code and the API use; the admin shows it translated, and not at all when it only repeats the status."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from .models import Avatar

STAGE_LABELS = {
    "queued": _("queued"),
    "starting": _("starting"),
    "decoding": _("decoding the source"),
    "extras": _("preparing the lip-sync data"),
    "publishing": _("publishing"),
    "retrying": _("retrying"),
    "reused": _("reused an identical earlier build"),
}


def stage_label(avatar: Avatar) -> str:
    """The stage in the user's language; empty when it is the status again (a ready build's stage "ready")."""
    if avatar.stage == avatar.status:
        return ""
    return str(STAGE_LABELS.get(avatar.stage, avatar.stage))
