"""``manage.py rebuild_avatars``: queue a build for every ready avatar whose bundle this version cannot read
(built by an older LiveHuman), or for all of them with ``--all``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from avatars_app.models import Avatar
from avatars_app.services import has_current_bundle
from avatars_app.tasks import queue_build


class Command(BaseCommand):
    help = "Queue builds for avatars whose bundle is outdated (older bundle version); --all rebuilds every one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="rebuild every ready avatar, not only outdated ones")

    def handle(self, *args: Any, **options: Any) -> None:
        ready = Avatar.objects.filter(status=Avatar.Status.READY).order_by("pk")
        chosen = [a for a in ready if options["all"] or not has_current_bundle(a)]
        with transaction.atomic():
            for avatar in chosen:
                queue_build(avatar, force=True)
        for avatar in chosen:
            self.stdout.write(f"queued: avatar {avatar.pk} ({avatar.name}) of tenant {avatar.tenant_id}")
        self.stdout.write(f"{len(chosen)} build(s) queued; run a Celery worker to build them.")
