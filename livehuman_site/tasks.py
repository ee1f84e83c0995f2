"""Celery tasks of the platform itself (avatar builds live in ``avatars_app.tasks``)."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import shared_task


@shared_task(name="livehuman_site.ping")
def ping(nonce: str) -> dict[str, Any]:
    """Answer a health check: proves a worker took the task from the broker and stored a result."""
    return {"nonce": nonce, "hostname": socket.gethostname(), "pid": os.getpid()}
