from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = _("Chat sessions")

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from realtime.metrics import LiveSessionsCollector

        from . import (
            access,  # noqa: F401 - connects the receivers that end sessions when access is withdrawn
            live_config,
        )
        from .live_sessions import live_sessions

        REGISTRY.register(LiveSessionsCollector(live_sessions.states))
        live_config.connect()
