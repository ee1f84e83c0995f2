"""Admin for tenancy, and ``TenantScopedAdmin``: the base of every tenant-owned model's admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .models import Membership, Tenant, TenantAPIKey, TenantOwnedModel
from .scoping import scope_for_request


class TenantScopedAdmin(admin.ModelAdmin):
    """Shows a tenant's owners and admins only their tenant's rows.

    Lists, change pages (an id from another tenant is simply not found),
    foreign-key choices and new rows all go through the request's ``Scope``.
    Superusers see every tenant and pick the tenant of a new row themselves.
    """

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return scope_for_request(request).filter(super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.remote_field.model
        if issubclass(related, TenantOwnedModel) or related is Tenant:
            kwargs["queryset"] = scope_for_request(request).filter(related._default_manager.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append("tenant")
        return exclude

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if request.user.is_superuser and "tenant" not in columns:
            columns.append("tenant")
        return columns

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if not request.user.is_superuser:
            tenant = scope_for_request(request).tenant

            class TenantForm(form):
                def _post_clean(self) -> None:
                    # The tenant is set before model validation so clean() can check cross-tenant links.
                    if self.instance.tenant_id is None:
                        self.instance.tenant = tenant
                    super()._post_clean()

            return TenantForm
        return form

    def _can_administer(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and scope_for_request(request).can_administer

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._can_administer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_administer(request) and (obj is None or scope_for_request(request).owns(obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._can_administer(request) and scope_for_request(request).tenant is not None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Superusers manage tenants; a tenant's owner may view its own limits."""

    list_display = ["name", "slug", "is_active", "max_concurrent_sessions", "max_avatars", "max_upload_mb"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return scope_for_request(request).filter(super().get_queryset(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and scope_for_request(request).can_administer

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request) and (
            obj is None or scope_for_request(request).filter(Tenant.objects.filter(pk=obj.pk)).exists()
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(TenantScopedAdmin, APIKeyModelAdmin):
    """Create (key shown once, stored hashed) and revoke a tenant's integration keys."""

    list_display = ["prefix", "name", "created", "expiry_date", "_has_expired", "revoked"]


admin.site.unregister(APIKey)  # the package's untenanted key model is not used
