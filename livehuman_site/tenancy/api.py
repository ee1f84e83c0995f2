"""DRF building blocks that scope viewsets and serializers by the request's tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, ProtectedError, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.filters import QuerySetRequestMixin
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, filters, serializers, status

from .models import Tenant
from .scoping import Scope, scope_for_request
from .throttling import RefusedCallsCountMixin


class TenantScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key whose choices are the rows of the tenant being written to.

    For an ordinary caller that is their own tenant, so another tenant's id is
    "does not exist" (a 400 field error). A superuser may read every tenant,
    but a row still links only within its own tenant: the one being edited, or
    the superuser's current tenant for a new row.
    """

    def get_queryset(self) -> QuerySet:
        scope = scope_for_request(self.context["request"])
        return scope.for_tenant(self._target_tenant(scope)).filter(super().get_queryset())

    def _target_tenant(self, scope: Scope) -> Tenant | None:
        serializer = self.parent
        if isinstance(serializer, serializers.ManyRelatedField):
            serializer = serializer.parent
        instance = getattr(serializer, "instance", None)
        return getattr(instance, "tenant", None) or scope.tenant


class TenantScopedSerializer(serializers.ModelSerializer):
    """ModelSerializer whose related fields are tenant-scoped and whose ``tenant`` is never client-set."""

    serializer_related_field = TenantScopedRelatedField


class TenantScopedFilterBackend(DjangoFilterBackend):
    """django-filter whose foreign-key filters (``?role=<id>``) accept only the caller's rows.

    Without it, another tenant's id would be a valid choice (an empty list)
    while a made-up id is a 400: an oracle for which ids exist elsewhere.
    """

    def get_filterset(self, request: Any, queryset: QuerySet, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        scope = scope_for_request(request)
        for model_filter in filterset.filters.values():  # per-instance copies: safe to change
            if isinstance(model_filter, QuerySetRequestMixin) and model_filter.queryset is not None:
                model_filter.queryset = scope.filter(model_filter.get_queryset(request))
        return filterset


class InUseError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "in_use"
    default_detail = _("This is still in use and cannot be deleted.")


class TenantScopedViewSetMixin(RefusedCallsCountMixin):
    """Every query of the viewset goes through the caller's ``Scope``; new rows get its tenant. Refused calls
    count towards the caller's request rate."""

    filter_backends = [TenantScopedFilterBackend, filters.OrderingFilter]

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

    def perform_destroy(self, instance: Model) -> None:
        """Deleting a row others depend on (a voice used by a role) is a 409 that names them, not a 500."""
        try:
            instance.delete()
        except ProtectedError as exc:
            users = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
            raise InUseError(_("This is still used by: %(users)s.") % {"users": users}) from exc
