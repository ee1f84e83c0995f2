from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = _("Chat sessions")

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from realtime.metrics import degrade_levels_gauge, live_sessions_gauge

        from . import (
            access,  # noqa: F401 - connects the receivers that end sessions when access is withdrawn
            live_config,
        )
        from .live_sessions import live_sessions

        REGISTRY.register(live_sessions_gauge(live_sessions.states))
        REGISTRY.register(degrade_levels_gauge(live_sessions.degrade_levels))
        live_config.connect()
