"""The chat page: pick a role, start a session, talk to the avatar."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from avatars_app.models import Role


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    roles = request.tenant_scope.filter(Role.objects.filter(active=True)).select_related("avatar")
    return render(request, "sessions_app/chat.html", {"roles": roles})
