"""A daphne process's start and stop, for its sessions (issue 10, Medium 6; DESIGN.md §7).

Daphne has no ASGI lifespan; it runs on Twisted's asyncio reactor, which it installs before it imports the
application. So ``asgi.py`` calls ``install`` at import and this module hooks the reactor itself:

- once the reactor runs: the heartbeat (``heartbeat.ensure_running``), whose first beat sweeps at once what a
  killed predecessor left, and which stamps and sweeps from then on, traffic or not;
- at stop (SIGTERM, SIGINT): every live session here ends as ``shutdown`` — its page told, its peer
  connection closed, its row ended — before the reactor stops. Daphne waits for this, as it waits for the
  consumers it cancels at the same time (``SessionConsumer`` ends a cancelled session as ``shutdown`` too).

A process whose reactor never runs (the test suite imports daphne for its ``runserver``) is hooked to no effect.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from . import heartbeat
from .live_sessions import live_sessions
from .models import ChatSession
from .owner import GOING_AWAY


def install() -> None:
    """Hook this daphne process's start and stop; nothing when the application is not served by daphne."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or "daphne.server" not in sys.modules:
        return
    reactor.callLater(0, heartbeat.ensure_running)  # the first thing the reactor's event loop runs
    reactor.addSystemEventTrigger("before", "shutdown", _end_all_sessions)


def _end_all_sessions() -> Any:
    """The reactor waits for the Deferred returned here before it stops."""
    from twisted.internet.defer import Deferred

    ending = asyncio.ensure_future(live_sessions.end_all(ChatSession.EndReason.SHUTDOWN, GOING_AWAY))
    return Deferred.fromFuture(ending)
