from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AvatarsAppConfig(AppConfig):
    name = "avatars_app"
    verbose_name = _("Roles and avatars")

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
