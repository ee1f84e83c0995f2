"""ASGI entry point for daphne: Django over HTTP, the session consumer over WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from livehuman_site.tenancy.websocket_auth import APIKeyAuthMiddleware  # noqa: E402
from livehuman_site.websocket_origin import BrowserOriginValidator  # noqa: E402
from sessions_app.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(APIKeyAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
from sessions_app import daphne_process  # noqa: E402
from sessions_app.preload import preload_at_start  # noqa: E402

preload_at_start()  # before daphne listens (PRELOAD_AT_START): no first session waits for a load
daphne_process.install()  # under daphne: sweep dead sessions now, heartbeat once serving, end sessions at SIGTERM
