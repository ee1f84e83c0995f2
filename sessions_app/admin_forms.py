"""The admin's form to start a broadcast: a role of the caller's tenant and an RTMP URL the outbound policy allows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from avatars_app.models import Role

from .commands import CommandError, checked_rtmp_url


class BroadcastForm(forms.Form):
    role = forms.ModelChoiceField(queryset=Role.objects.none(), label=_("Role"))
    rtmp_url = forms.CharField(
        label=_("RTMP URL (with the stream key)"),
        widget=forms.TextInput(attrs={"size": 70, "placeholder": "rtmp://live.example.com/app/stream-key"}),
    )

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles

    def clean_rtmp_url(self) -> str:
        """The same check as ``POST sessions/`` with ``rtmp_url``."""
        try:
            return checked_rtmp_url(self.cleaned_data["rtmp_url"])
        except CommandError as exc:
            raise forms.ValidationError(str(exc)) from exc
