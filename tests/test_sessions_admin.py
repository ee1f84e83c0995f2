"""The read-mostly chat-session admin: transcript with timings, search, ending sessions, no hand-made rows."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from avatars_app.models import Role, Voice
from sessions_app.models import ChatSession, Message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def session(world_a) -> ChatSession:
    voice = Voice.objects.create(tenant=world_a.tenant, name="v")
    role = Role.objects.create(tenant=world_a.tenant, name="Guide", voice=voice)
    session = ChatSession.objects.create(tenant=world_a.tenant, role=role, user=world_a.member)
    Message.objects.create(tenant=world_a.tenant, session=session, speaker="user", text="What time is it?", asr_ms=140)
    Message.objects.create(
        tenant=world_a.tenant, session=session, speaker="assistant", text="Time to talk.", total_ms=987
    )
    return session


@pytest.fixture
def owner_client(cast):
    return cast.client("own_owner")


def test_the_change_page_shows_the_transcript_with_timings_read_only(owner_client, session):
    response = owner_client.get(reverse("admin:sessions_app_chatsession_change", args=[quote(session.pk)]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "What time is it?" in page and "Time to talk." in page and "987" in page
    assert 'name="messages-0-text"' not in page  # the inline renders text, not form inputs
    for field in ("state", "role", "user", "end_reason"):
        assert f'name="{field}"' not in page, f"{field} is editable"


def test_sessions_are_not_added_by_hand(owner_client):
    assert owner_client.get(reverse("admin:sessions_app_chatsession_add")).status_code == 403


def test_search_by_id_and_by_spoken_text(owner_client, session):
    url = reverse("admin:sessions_app_chatsession_changelist")
    link = reverse("admin:sessions_app_chatsession_change", args=[quote(session.pk)])
    assert link in owner_client.get(url, {"q": str(session.pk)[:8]}).content.decode()
    assert link in owner_client.get(url, {"q": "what time"}).content.decode()
    assert link not in owner_client.get(url, {"q": "never said"}).content.decode()


def test_ending_sessions_from_the_list(owner_client, session):
    response = owner_client.post(
        reverse("admin:sessions_app_chatsession_changelist"),
        {"action": "end_sessions", "_selected_action": [str(session.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.state == ChatSession.State.ENDED and session.end_reason == ChatSession.EndReason.CLIENT
    assert session.ended_at is not None


@pytest.mark.parametrize(
    ("language", "created_state", "ended_state", "ended_label", "speaker"),
    [("zh-hans", "已创建", "已结束", "结束时间", "用户"), ("en", "created", "ended", "Ended", "user")],
)
def test_states_read_as_states_and_times_as_times_in_each_language(
    owner_client, session, world_a, language, created_state, ended_state, ended_label, speaker
):
    """ "created" and "ended" are both a state and a time column: Chinese words them differently (已创建, 创建时间)."""
    ended = ChatSession.objects.create(tenant=world_a.tenant, role=session.role, user=world_a.member)
    ended.end(ChatSession.EndReason.CLIENT)
    listing = owner_client.get(
        reverse("admin:sessions_app_chatsession_changelist"), HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    assert f'<td class="field-state">{created_state}</td>' in listing
    assert f'<td class="field-state">{ended_state}</td>' in listing
    link = reverse("admin:sessions_app_chatsession_change", args=[quote(session.pk)])
    assert f'<a href="{link}">{str(session.pk)[:8]}</a>' in listing  # the short id, which the search matches
    page = owner_client.get(
        reverse("admin:sessions_app_chatsession_change", args=[quote(ended.pk)]), HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    assert f"<label>{ended_label}:</label>" in page
    transcript = owner_client.get(
        reverse("admin:sessions_app_chatsession_change", args=[quote(session.pk)]), HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    assert f"{speaker}: What time is it?" in transcript
