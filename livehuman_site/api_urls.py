"""REST API routes under /api/v1/, its OpenAPI schema and docs page, and the API-format 404 for the rest."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import APIRootView, DefaultRouter

from avatars_app.api import AvatarViewSet, PromptViewSet, RoleViewSet, VoiceViewSet
from sessions_app.api import ChatSessionViewSet, MessageViewSet

from .api_errors import UnknownEndpointView
from .tenancy.models import APIKeyScope


class ApiRootView(APIRootView):
    """The list of endpoints: any API key may read it, whatever its scopes."""

    api_key_scopes = tuple(APIKeyScope)


router = DefaultRouter()
router.APIRootView = ApiRootView
router.register("voices", VoiceViewSet)
router.register("prompts", PromptViewSet)
router.register("avatars", AvatarViewSet)
router.register("roles", RoleViewSet)
router.register("sessions", ChatSessionViewSet)

# Every session action answers without the trailing slash too (`sessions/<id>/say`, as the README writes them): a
# POST cannot follow APPEND_SLASH's redirect. Taken from the viewset's own actions, so a new one cannot be
# forgotten here. Left out of the schema, which lists the router's form once.
session_actions_without_slash = [
    path(f"sessions/<uuid:pk>/{action.url_path}", ChatSessionViewSet.as_view(dict(action.mapping), schema=None))
    for action in ChatSessionViewSet.get_extra_actions()
    if action.detail
]

urlpatterns = [
    # Public pages: they ignore credentials, so a stale key in an integration's client still gets the docs.
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[]), name="api-schema"),
    # The split view serves its start-up script as a file of its own: no inline script under the site's CSP.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[]),
        name="api-docs",
    ),
    *session_actions_without_slash,
    path("", include(router.urls)),
    path(
        "sessions/<uuid:session_pk>/messages/",
        MessageViewSet.as_view({"get": "list"}),
        name="session-messages",
    ),
    re_path(r"^.*$", UnknownEndpointView.as_view(), name="api-unknown"),
]
