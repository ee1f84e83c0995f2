"""Live configuration: saving a Role, its Voice or its Prompt (admin or API) reaches that role's running sessions
on every process within a moment.

A save announces the changed roles once the transaction commits, on the channel layer group of the role's
tenant; every live session of the tenant (browser or broadcast, any daphne process) is in that group and
re-reads its role if it is among them (``SessionOwner.role_changed``): a new prompt from the next turn, a new
voice from the next sentence, a new avatar or fps as an in-place switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save

from avatars_app.models import Avatar, Prompt, Role, Voice

ROLE_CHANGED = "role.changed"
_sending: set[asyncio.Task] = set()  # sends scheduled from an event loop's thread, kept until done


def tenant_roles_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}.roles"


def announce(tenant_id: Any, role_ids: Iterable[int]) -> None:
    """Tell the tenant's live sessions that these roles changed, once the change is committed."""
    roles = sorted(set(role_ids))
    if not roles:
        return
    event = {"type": ROLE_CHANGED, "roles": roles}
    transaction.on_commit(lambda: _send(tenant_roles_group(tenant_id), event))


def _send(group: str, event: dict[str, Any]) -> None:
    """From sync code (views, admin, tasks) wait for the send; on an event loop's own thread, schedule it."""
    layer = get_channel_layer()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(layer.group_send)(group, event)
    else:
        task = loop.create_task(layer.group_send(group, event))
        _sending.add(task)
        task.add_done_callback(_sending.discard)


def _role_saved(sender: type[Role], instance: Role, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if not created and not raw:
        announce(instance.tenant_id, [instance.pk])


def _part_saved(
    sender: type, instance: Voice | Prompt | Avatar, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if not created and not raw:
        announce(instance.tenant_id, instance.roles.values_list("pk", flat=True))


def connect() -> None:
    post_save.connect(_role_saved, sender=Role, dispatch_uid="live_config.role")
    for model in (Voice, Prompt, Avatar):
        post_save.connect(_part_saved, sender=model, dispatch_uid=f"live_config.{model.__name__}")
