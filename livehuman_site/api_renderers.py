"""The browsable API's renderer: DRF's, without the catch-all 404 in its breadcrumbs."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import Resolver404, resolve
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request


class LiveHumanBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF builds breadcrumbs from every prefix of the path that resolves to an API view, with and without its
    trailing slash; ``/api/v1/voices`` resolves to the catch-all ``UnknownEndpointView``, whose crumb would read
    "Unknown Endpoint" and link to a 404."""

    def get_breadcrumbs(self, request: Request) -> list[tuple[str, str]]:
        return [crumb for crumb in super().get_breadcrumbs(request) if not _is_unknown_endpoint(crumb[1])]


def _is_unknown_endpoint(url: str) -> bool:
    # Imported here: DRF imports this module while it defines APIView, which api_errors subclasses.
    from .api_errors import UnknownEndpointView

    try:
        return getattr(resolve(urlsplit(url).path).func, "cls", None) is UnknownEndpointView
    except Resolver404:
        return False
