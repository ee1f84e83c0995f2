"""The Django side of the outbound policy: the product's policy from settings, and the save-time field check.

The policy itself lives in ``realtime.net.outbound`` (Django-free); here it is
built from ``LIVEHUMAN["OUTBOUND_ALLOW"]`` and its refusals become field errors
in the tenant's language, in the admin and the API alike (the validator sits on
the model fields, which both use).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

from realtime.net.outbound import OutboundPolicy, OutboundRefused

from .conf import livehuman_settings

_MESSAGES = {
    "bad_scheme": _("Only http and https URLs are allowed."),
    "credentials_in_url": _("A URL must not contain a user name or password; put the key in its own field."),
    "internal_address": _(
        "%(host)s is an internal address (loopback, private, link-local or reserved); the operator has not allowed it."
    ),
    "unresolvable": _("%(host)s cannot be resolved to an address."),
    "bad_url": _("This is not a valid URL."),
}


def outbound_policy() -> OutboundPolicy:
    """The product's outbound policy: public addresses, plus what the operator allow-listed."""
    return OutboundPolicy(allow=tuple(livehuman_settings.OUTBOUND_ALLOW))


def refusal_message(refused: OutboundRefused) -> str:
    """The refusal in the current language; names the host, nothing more."""
    return str(_MESSAGES.get(refused.code, _MESSAGES["bad_url"]) % {"host": refused.host})


@deconstructible
class OutboundURLValidator:
    """A field validator: the URL must pass the outbound policy as it stands when the value is saved."""

    def __init__(self, schemes: tuple[str, ...] = ("http", "https")) -> None:
        self.schemes = tuple(schemes)

    def __call__(self, value: str) -> None:
        if not value:
            return
        try:
            outbound_policy().check_url(value, schemes=self.schemes)
        except OutboundRefused as refused:
            raise ValidationError(refusal_message(refused), code=refused.code) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutboundURLValidator) and other.schemes == self.schemes


validate_outbound_url = OutboundURLValidator()
