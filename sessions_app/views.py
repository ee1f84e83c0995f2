"""The chat page: pick a role, start a session, talk to the avatar."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from avatars_app.models import Role

from .models import ChatSession
from .voice_input import voice_input_note


def _page_strings() -> dict[str, str]:
    """Texts the page's script shows, translated on the server so one catalogue serves template and script."""
    return {
        "idle": _("idle"),
        "listening": _("listening"),
        "thinking": _("thinking"),
        "speaking": _("speaking"),
        "connecting": _("connecting…"),
        "disconnected": _("disconnected"),
        "start": _("Start"),
        "stop": _("Stop"),
        "you": _("You"),
        "assistant": _("Avatar"),
        "interrupted": _("(interrupted)"),
        "mic_denied": _("No microphone: you can still type."),
        "session_ended": _("The session ended: %(reason)s"),
        "error": _("Error: %(message)s"),
        # one part per stage, shown only for the stages the message went through (typed text has no ASR)
        "timing_asr": _("ASR %(ms)s ms"),
        "timing_llm": _("LLM %(ms)s ms"),
        "timing_tts": _("TTS %(ms)s ms"),
        "timing_frame": _("first frame %(ms)s ms"),
        "timing_total": _("total %(ms)s ms"),
        "server_fps": _("sent at %(fps)s fps"),
        "role_switched": _("Now talking to %(name)s (switched in %(ms)s ms)."),
        "role_updated": _("%(name)s was updated: %(changes)s."),
        "changed_voice": _("new voice from the next sentence"),
        "changed_prompt": _("new prompt from the next answer"),
        "changed_avatar": _("new look, switched in place"),
        "jitter_buffer": _("jitter buffer"),
        "degraded": _("Reduced quality to stay real-time: %(what)s."),
        "degraded_fps": _("%(fps)s fps"),
        "degraded_half_size": _("half resolution"),
        "degraded_engine": _("lighter lip-sync"),
        # why a session ended, as the admin names it (the page gets the reason's code)
        **{f"ended_{reason.value}": str(reason.label) for reason in ChatSession.EndReason},
    }


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    roles = list(request.tenant_scope.filter(Role.objects.filter(active=True)).select_related("avatar"))
    for role in roles:
        role.voice_input_note = voice_input_note(role)
    return render(request, "sessions_app/chat.html", {"roles": roles, "page_strings": _page_strings()})
