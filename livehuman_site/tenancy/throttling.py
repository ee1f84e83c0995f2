"""Request-rate limits that know API keys.

DRF's stock throttles see an API-key caller as anonymous (its ``request.user``
is ``AnonymousUser``), so every integration behind one address would share the
anonymous rate. Here a key is a caller of its own, limited like a logged-in user.
Rates are read per request, so ``DEFAULT_THROTTLE_RATES`` can be changed in settings at run time.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from .models import TenantAPIKey


def _is_api_key_caller(request: Any) -> bool:
    return isinstance(getattr(request, "auth", None), TenantAPIKey)


class _RatesFromSettingsMixin:
    """Look the rate up when the throttle is made, not when the class was imported."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonymousRateThrottle(_RatesFromSettingsMixin, AnonRateThrottle):
    """Scope ``anon``: callers with neither a login nor an API key, per address."""

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if _is_api_key_caller(request):
            return None
        return super().get_cache_key(request, view)


class RefusedCallsCountMixin:
    """Refused calls count towards the caller's rate too.

    DRF checks authentication and permissions before throttles, so a caller
    guessing keys or probing without credentials was answered 401/403 forever
    and never throttled. Here a refusal first counts against the rate (and
    becomes a 429 once it is spent), then is raised as before.
    """

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().initial(request, *args, **kwargs)
        except (exceptions.AuthenticationFailed, exceptions.NotAuthenticated, exceptions.PermissionDenied):
            self.check_throttles(request)
            raise


class CallerRateThrottle(_RatesFromSettingsMixin, UserRateThrottle):
    """Scope ``user``: per logged-in user, or per API key for integrations."""

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if _is_api_key_caller(request):
            return self.cache_format % {"scope": self.scope, "ident": f"key-{request.auth.pk}"}
        return super().get_cache_key(request, view)
