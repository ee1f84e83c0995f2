"""Access withdrawn is access ended: revoking an API key (or taking its sessions scope), deactivating a tenant or a
user, or removing a member closes the live sessions they opened, on whichever process owns them (issue 10, Medium 7).

Access is checked when a session is created and when its WebSocket connects; these receivers cover the time
after, ending the rows and sending ``End`` to each owner through the channel layer (``services.end_sessions``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from livehuman_site.tenancy.models import APIKeyScope, Membership, Tenant, TenantAPIKey

from . import services
from .models import ChatSession

REVOKED = ChatSession.EndReason.REVOKED


def _end_later(sessions: Any) -> None:
    transaction.on_commit(lambda: services.end_sessions(sessions, REVOKED))


@receiver(post_save, sender=TenantAPIKey)
def key_revoked(sender: type, instance: TenantAPIKey, **kwargs: Any) -> None:
    """Revoked, or no longer allowed to run sessions."""
    if instance.revoked or APIKeyScope.SESSIONS not in instance.scopes:
        _end_later(ChatSession.objects.filter(api_key=instance))


@receiver(pre_delete, sender=TenantAPIKey)
def key_deleted(sender: type, instance: TenantAPIKey, **kwargs: Any) -> None:
    # The rows are taken now: the delete then detaches them from the key (SET_NULL).
    sessions = list(ChatSession.objects.filter(api_key=instance).open().values_list("pk", flat=True))
    _end_later(ChatSession.objects.filter(pk__in=sessions))


@receiver(post_save, sender=Tenant)
def tenant_deactivated(sender: type, instance: Tenant, **kwargs: Any) -> None:
    if not instance.is_active:
        _end_later(ChatSession.objects.filter(tenant=instance))


@receiver(post_save, sender=get_user_model())
def user_deactivated(sender: type, instance: Any, **kwargs: Any) -> None:
    if not instance.is_active:
        _end_later(ChatSession.objects.filter(user=instance))


@receiver(post_delete, sender=Membership)
def member_removed(sender: type, instance: Membership, **kwargs: Any) -> None:
    _end_later(ChatSession.objects.filter(tenant_id=instance.tenant_id, user_id=instance.user_id))
