"""``manage.py check_services``: is the database, the channel layer and Celery (broker + a worker) working?"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from livehuman_site.health import check_all


class Command(BaseCommand):
    help = (
        "Check the services LiveHuman depends on with real round trips: a database query, a channel-layer "
        "group message, and a Celery task answered by a worker. Exits with status 1 when any check fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for each round trip.")
        parser.add_argument("--queue", default=None, help="Celery queue to ping (default: the default queue).")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON, for monitoring.")

    def handle(self, *args: Any, **options: Any) -> None:
        results = check_all(timeout=options["timeout"], queue=options["queue"])
        if options["json"]:
            self.stdout.write(json.dumps([asdict(result) for result in results], indent=2))
        else:
            for result in results:
                status = self.style.SUCCESS("OK  ") if result.ok else self.style.ERROR("FAIL")
                self.stdout.write(f"{result.name:<14} {status} {result.elapsed_ms:8.1f} ms  {result.detail}")
        failed = [result.name for result in results if not result.ok]
        if failed:
            raise CommandError(f"Failed: {', '.join(failed)}")
