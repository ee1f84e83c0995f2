"""Admin for tenancy, and the bases every tenant-owned model's admin builds on.

``TenantScopedAdmin`` (and ``TenantScopedTabularInline`` / ``ReadOnlyTenantInline``
for inlines) route lists, change pages, foreign-key choices, list filters and
new rows through the request's ``Scope``; a model admin only inherits.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .models import Membership, Tenant, TenantAPIKey, is_tenant_owned
from .scoping import scope_for_request


def _scoped_choices(request: HttpRequest, model: type[models.Model]) -> models.QuerySet | None:
    """The rows of ``model`` this request may pick in a form, or None when ``model`` is not scoped."""
    if model is Tenant or model is get_user_model() or is_tenant_owned(model):
        return scope_for_request(request).filter(model._default_manager.all())
    return None


def _can_administer(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_staff and scope_for_request(request).can_administer


def _without_tenant(fieldsets: Any) -> list:
    """Fieldsets with the ``tenant`` field removed (a non-superuser's rows always go to their tenant)."""
    return [
        (name, {**options, "fields": [f for f in options.get("fields", ()) if f != "tenant"]})
        for name, options in fieldsets
    ]


class TenantScopedFieldsMixin:
    """Foreign-key and many-to-many choices limited to the request's tenant (users: its members)."""

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        choices = _scoped_choices(request, db_field.remote_field.model)
        if choices is not None:
            kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any) -> Any:
        choices = _scoped_choices(request, db_field.remote_field.model)
        if choices is not None:
            kwargs["queryset"] = choices
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantScopedAdmin(TenantScopedFieldsMixin, admin.ModelAdmin):
    """Shows a tenant's owners and admins only their tenant's rows.

    Lists, change pages (an id from another tenant is simply not found),
    foreign-key choices, related list filters and new rows all go through the
    request's ``Scope``. Superusers see every tenant and pick the tenant of a
    new row themselves; the model's ``clean`` still refuses cross-tenant links.
    """

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return scope_for_request(request).filter(super().get_queryset(request))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append("tenant")
        return exclude

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if request.user.is_superuser else _without_tenant(fieldsets)

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if request.user.is_superuser and "tenant" not in columns:
            columns.append("tenant")
        return columns

    def get_list_filter(self, request: HttpRequest) -> Any:
        """Related filters list only related rows present in the scoped list, never another tenant's names."""
        filters = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and self._is_relation(entry):
                entry = (entry, admin.RelatedOnlyFieldListFilter)
            filters.append(entry)
        if request.user.is_superuser and "tenant" not in filters:
            filters.append("tenant")
        return filters

    def _is_relation(self, name: str) -> bool:
        try:
            return self.model._meta.get_field(name).is_relation
        except FieldDoesNotExist:
            return False  # a lookup path such as "role__voice": Django resolves it; choices stay the default

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if request.user.is_superuser:
            return form
        tenant = scope_for_request(request).tenant

        class TenantForm(form):
            def _post_clean(self) -> None:
                # The tenant is set before model validation so clean() can check cross-tenant links.
                if self.instance.tenant_id is None:
                    self.instance.tenant = tenant
                super()._post_clean()

        return TenantForm

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _can_administer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _can_administer(request) and (obj is None or scope_for_request(request).owns(obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        scope = scope_for_request(request)
        return _can_administer(request) and (scope.unrestricted or scope.tenant is not None)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)


class TenantInlineFormSet(BaseInlineFormSet):
    """New inline rows belong to the tenant of the row they are edited with."""

    def _construct_form(self, i: int, **kwargs: Any) -> Any:
        form = super()._construct_form(i, **kwargs)
        if form.instance.tenant_id is None:
            form.instance.tenant_id = self.instance.tenant_id
        return form


class TenantScopedInlineMixin(TenantScopedFieldsMixin):
    """Inline rows: scoped like ``TenantScopedAdmin``; permissions follow the parent row's tenant."""

    formset = TenantInlineFormSet

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return scope_for_request(request).filter(super().get_queryset(request))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*list(super().get_exclude(request, obj) or []), "tenant"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _can_administer(request) and (obj is None or scope_for_request(request).owns(obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)


class TenantScopedTabularInline(TenantScopedInlineMixin, admin.TabularInline):
    pass


class ReadOnlyTenantInline(TenantScopedTabularInline):
    """A history shown under its parent (prompt versions, a session's messages): written by the system, never
    added or edited by hand."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Superusers manage tenants and memberships; a tenant's owner may view its own limits."""

    list_display = [
        "name",
        "slug",
        "is_active",
        "max_concurrent_sessions",
        "max_avatars",
        "max_upload_mb",
        "max_storage_mb",
    ]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return scope_for_request(request).filter(super().get_queryset(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _can_administer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _can_administer(request) and (obj is None or scope_for_request(request).owns(obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(TenantScopedAdmin, APIKeyModelAdmin):
    """Create (key shown once, stored hashed), scope and revoke a tenant's integration keys."""

    list_display = [
        "prefix",
        "name",
        "scope_sessions",
        "scope_configuration",
        "created",
        "expiry_date",
        "expired",
        "revoked",
    ]
    list_filter = ["revoked", "scope_sessions", "scope_configuration", "created"]
    actions = ["revoke_keys"]

    @admin.display(description=gettext_lazy("expired"), boolean=True)
    def expired(self, key: TenantAPIKey) -> bool:
        """The library's ``_has_expired``, under a translated heading."""
        return key.has_expired

    def save_model(self, request: HttpRequest, obj: TenantAPIKey, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        # Only the hash is stored: this message is the one and only time the key is readable.
        key = self.model.objects.assign_key(obj)
        obj.save()
        messages.warning(
            request,
            _("The API key for %(name)s is: %(key)s. Store it somewhere safe now: it will not be shown again.")
            % {"name": obj.name, "key": key},
        )

    @admin.action(description=gettext_lazy("Revoke the selected API keys"))
    def revoke_keys(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        count = queryset.filter(revoked=False).update(revoked=True)
        messages.success(request, _("%(count)d API keys revoked.") % {"count": count})


admin.site.unregister(APIKey)  # the package's untenanted key model is not used
