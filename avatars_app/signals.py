"""Keep MEDIA_ROOT in step with the Avatar and Voice rows: a file leaves with its row, a replaced upload with
the change that replaced it (they count towards the tenant's disk quota)."""

from typing import Any

from django.db.models.signals import post_delete, pre_save
from django.dispatch import receiver

from .models import Avatar, Voice
from .services import delete_avatar_files_later, delete_file_later


@receiver(post_delete, sender=Avatar)
def remove_avatar_files(sender: type[Avatar], instance: Avatar, **kwargs: Any) -> None:
    delete_avatar_files_later(instance)


@receiver(post_delete, sender=Voice)
def remove_voice_files(sender: type[Voice], instance: Voice, **kwargs: Any) -> None:
    delete_file_later(instance.reference_audio)


@receiver(pre_save, sender=Avatar)
@receiver(pre_save, sender=Voice)
def remove_replaced_upload(sender: type[Avatar] | type[Voice], instance: Avatar | Voice, **kwargs: Any) -> None:
    field = "source_video" if sender is Avatar else "reference_audio"
    if instance.pk is None or kwargs.get("raw"):
        return
    previous = sender.objects.filter(pk=instance.pk).first()
    if previous is not None and getattr(previous, field).name != getattr(instance, field).name:
        delete_file_later(getattr(previous, field))
