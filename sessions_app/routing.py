"""WebSocket routes (DESIGN.md §7)."""

from django.urls import path

from .consumers import SessionConsumer

websocket_urlpatterns: list = [
    path("ws/sessions/<uuid:session_id>/", SessionConsumer.as_asgi()),
]
