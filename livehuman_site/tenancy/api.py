"""DRF building blocks that scope viewsets and serializers by the request's tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .scoping import Scope, scope_for_request


class TenantScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign-key field whose choices are the caller's tenant's rows: another tenant's id is 'does not exist'."""

    def get_queryset(self) -> QuerySet:
        return scope_for_request(self.context["request"]).filter(super().get_queryset())


class TenantScopedSerializer(serializers.ModelSerializer):
    """ModelSerializer whose related fields are tenant-scoped and whose ``tenant`` is never client-set."""

    serializer_related_field = TenantScopedRelatedField


class TenantScopedViewSetMixin:
    """Every query of the viewset goes through the caller's ``Scope``; new rows get its tenant."""

    @property
    def scope(self) -> Scope:
        return scope_for_request(self.request)

    def get_queryset(self) -> QuerySet:
        return self.scope.filter(super().get_queryset())

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "scope": self.scope}

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        if self.scope.tenant is None:
            raise serializers.ValidationError({"tenant": [_("Choose a tenant first.")]})
        serializer.save(tenant=self.scope.tenant)
