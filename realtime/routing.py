"""WebSocket routes (DESIGN.md §7)."""

websocket_urlpatterns: list = []
