"""REST API routes under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from avatars_app.api import AvatarViewSet, PromptViewSet, RoleViewSet, VoiceViewSet
from sessions_app.api import ChatSessionViewSet, MessageViewSet

router = DefaultRouter()
router.register("voices", VoiceViewSet)
router.register("prompts", PromptViewSet)
router.register("avatars", AvatarViewSet)
router.register("roles", RoleViewSet)
router.register("sessions", ChatSessionViewSet)

urlpatterns = [
    path("", include(router.urls)),
    path(
        "sessions/<uuid:session_pk>/messages/",
        MessageViewSet.as_view({"get": "list"}),
        name="session-messages",
    ),
]
