"""Keep MEDIA_ROOT in step with the Avatar rows."""

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Avatar
from .services import delete_avatar_files_later


@receiver(post_delete, sender=Avatar)
def remove_avatar_files(sender: type[Avatar], instance: Avatar, **kwargs: Any) -> None:
    delete_avatar_files_later(instance)
