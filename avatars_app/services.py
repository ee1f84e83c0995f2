"""Avatar business rules: tenant quotas, registering an upload, queueing its build."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from livehuman_site.tenancy.models import Tenant

from .models import Avatar


def check_upload_quota(tenant: Tenant, size: int) -> None:
    """Refuse an upload larger than the tenant's limit, before anything is stored."""
    if size > tenant.max_upload_bytes:
        raise ValidationError(
            _("The file is %(size).1f MB; this tenant's limit is %(limit)d MB.")
            % {"size": size / 1024 / 1024, "limit": tenant.max_upload_mb},
            code="upload_quota",
        )


def check_avatar_quota(tenant: Tenant) -> None:
    """Refuse a new avatar when the tenant already has as many as it may."""
    if Avatar.objects.for_tenant(tenant).count() >= tenant.max_avatars:
        raise ValidationError(
            _("This tenant already has %(count)d avatars, its limit.") % {"count": tenant.max_avatars},
            code="avatar_quota",
        )
