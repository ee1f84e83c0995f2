"""The REST API under /api/v1/: CRUD, sessions, pagination, errors, throttling, schema, secrets, bad input."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from avatars_app.models import Avatar, Prompt, Role, Voice
from sessions_app.api import ChatSessionViewSet
from sessions_app.models import ChatSession, Message
from tests.fixtures.callers import assert_error_body, tiny_video
from tests.fixtures.tenancy import key_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def voice(world_a) -> Voice:
    return Voice.objects.create(tenant=world_a.tenant, name="Joe", engine="piper", language="en")


@pytest.fixture
def role(world_a, voice) -> Role:
    return Role.objects.create(tenant=world_a.tenant, name="Guide", voice=voice)


# ------------------------------------------------------------------------------------------- CRUD


def test_voice_crud(owner, world_a):
    created = owner.post("/api/v1/voices/", {"name": "Ann", "engine": "espeak", "rate": 1.2}, format="json")
    assert created.status_code == 201, created.json()
    voice_id = created.json()["id"]
    assert owner.get(f"/api/v1/voices/{voice_id}/").json()["rate"] == 1.2
    updated = owner.patch(f"/api/v1/voices/{voice_id}/", {"pitch": 10}, format="json")
    assert updated.status_code == 200 and updated.json()["pitch"] == 10
    assert Voice.objects.get(pk=voice_id).pitch == 10
    assert owner.delete(f"/api/v1/voices/{voice_id}/").status_code == 204
    assert not Voice.objects.filter(pk=voice_id).exists()


def test_role_crud(owner, voice):
    payload = {"name": "Guide", "voice": voice.pk, "greeting": "Hi!", "fps": 25, "temperature": 0.3}
    created = owner.post("/api/v1/roles/", payload, format="json")
    assert created.status_code == 201, created.json()
    role_id = created.json()["id"]
    body = owner.get(f"/api/v1/roles/{role_id}/").json()
    assert (body["name"], body["voice"], body["greeting"], body["llm_engine"]) == ("Guide", voice.pk, "Hi!", "echo")
    assert owner.put(f"/api/v1/roles/{role_id}/", {**payload, "name": "Host"}, format="json").status_code == 200
    assert Role.objects.get(pk=role_id).name == "Host"
    assert owner.delete(f"/api/v1/roles/{role_id}/").status_code == 204
    assert not Role.objects.filter(pk=role_id).exists()


def test_prompt_crud_keeps_earlier_versions(owner):
    created = owner.post("/api/v1/prompts/", {"name": "Tone", "system_text": "Be kind."}, format="json")
    assert created.status_code == 201
    prompt_id = created.json()["id"]
    assert created.json()["version"] == 1 and created.json()["versions"] == []
    owner.patch(f"/api/v1/prompts/{prompt_id}/", {"system_text": "Be brief."}, format="json")
    owner.patch(f"/api/v1/prompts/{prompt_id}/", {"name": "Tone 2"}, format="json")  # not a text change
    body = owner.patch(f"/api/v1/prompts/{prompt_id}/", {"system_text": "Be witty."}, format="json").json()
    assert body["version"] == 3 and body["system_text"] == "Be witty."
    assert [(v["version"], v["system_text"]) for v in body["versions"]] == [(2, "Be brief."), (1, "Be kind.")]
    assert owner.delete(f"/api/v1/prompts/{prompt_id}/").status_code == 204
    assert not Prompt.objects.filter(pk=prompt_id).exists()


def test_deleting_a_voice_in_use_is_a_conflict_not_a_crash(owner, role, voice):
    response = owner.delete(f"/api/v1/voices/{voice.pk}/")
    assert response.status_code == 409
    assert role.name in assert_error_body(response, "in_use")["message"]
    assert Voice.objects.filter(pk=voice.pk).exists()


# --------------------------------------------------------------------------------------- sessions


def test_session_create_list_detail_end_and_messages(world_a, role):
    client = key_client(world_a.raw_key)
    created = client.post("/api/v1/sessions/", {"role": role.pk}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    session_id = body["id"]
    assert body["state"] == "created" and body["role"] == role.pk and body["role_name"] == "Guide"
    assert body["ws_url"].startswith(f"/ws/sessions/{session_id}/?ticket=") and body["ice_servers"] == []
    assert world_a.raw_key not in body["ws_url"]
    assert body["ice_transport_policy"] == "all"
    session = ChatSession.objects.get(pk=session_id)
    assert session.api_key == world_a.api_key and session.user is None

    listed = client.get("/api/v1/sessions/").json()
    assert [item["id"] for item in listed["results"]] == [session_id]
    assert client.get(f"/api/v1/sessions/{session_id}/").json()["id"] == session_id

    Message.objects.create(tenant=world_a.tenant, session=session, speaker="user", text="hello", asr_ms=120)
    Message.objects.create(
        tenant=world_a.tenant, session=session, speaker="assistant", text="hi there", llm_first_token_ms=40,
        tts_first_audio_ms=180, first_frame_ms=60, total_ms=420,
    )  # fmt: skip
    messages = client.get(f"/api/v1/sessions/{session_id}/messages/").json()["results"]
    assert [(m["speaker"], m["text"]) for m in messages] == [("user", "hello"), ("assistant", "hi there")]
    assert messages[0]["asr_ms"] == 120 and messages[1]["total_ms"] == 420

    ended = client.post(f"/api/v1/sessions/{session_id}/end/")
    assert ended.status_code == 200 and ended.json()["state"] == "ended" and ended.json()["end_reason"] == "client"
    first_end = ChatSession.objects.get(pk=session_id).ended_at
    assert client.post(f"/api/v1/sessions/{session_id}/end/").status_code == 200  # ending twice is harmless
    assert ChatSession.objects.get(pk=session_id).ended_at == first_end
    assert client.get("/api/v1/sessions/?state=ended").json()["count"] == 1
    assert client.get("/api/v1/sessions/?state=created").json()["count"] == 0


def test_a_member_sees_only_their_own_sessions(world_a, role):
    member, owner = APIClient(), APIClient()
    member.force_login(world_a.member)
    owner.force_login(world_a.owner)
    own = member.post("/api/v1/sessions/", {"role": role.pk}, format="json").json()["id"]
    others = owner.post("/api/v1/sessions/", {"role": role.pk}, format="json").json()["id"]
    assert [s["id"] for s in member.get("/api/v1/sessions/").json()["results"]] == [own]
    for path in (f"/api/v1/sessions/{others}/", f"/api/v1/sessions/{others}/messages/"):
        assert_error_body(member.get(path), "not_found")
    assert member.post(f"/api/v1/sessions/{others}/end/").status_code == 404
    assert {s["id"] for s in owner.get("/api/v1/sessions/").json()["results"]} == {own, others}


def test_session_limit_is_a_429_with_its_own_code(world_a, role):
    world_a.tenant.max_concurrent_sessions = 2
    world_a.tenant.save()
    client = key_client(world_a.raw_key)
    first, _second = (client.post("/api/v1/sessions/", {"role": role.pk}, format="json") for _ in range(2))
    refused = client.post("/api/v1/sessions/", {"role": role.pk}, format="json")
    assert refused.status_code == 429
    assert "2" in assert_error_body(refused, "session_limit")["message"]
    assert ChatSession.objects.filter(tenant=world_a.tenant).count() == 2
    client.post(f"/api/v1/sessions/{first.json()['id']}/end/")
    assert client.post("/api/v1/sessions/", {"role": role.pk}, format="json").status_code == 201


@pytest.mark.parametrize("problem", ["inactive role", "avatar not ready"])
def test_a_role_that_cannot_talk_is_a_409(world_a, role, problem):
    if problem == "inactive role":
        role.active = False
    else:
        role.avatar = Avatar.objects.create(
            tenant=world_a.tenant, name="face", source_video=SimpleUploadedFile("f.mp4", b"x")
        )
    role.save()
    response = key_client(world_a.raw_key).post("/api/v1/sessions/", {"role": role.pk}, format="json")
    assert response.status_code == 409
    assert_error_body(response, "role_unavailable")
    assert not ChatSession.objects.exists()


# ------------------------------------------------------------------------------------ pagination


def test_lists_are_paginated(owner, world_a):
    Voice.objects.bulk_create(Voice(tenant=world_a.tenant, name=f"voice {i:02d}") for i in range(55))
    first = owner.get("/api/v1/voices/").json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["previous"] is None
    assert owner.get(first["next"]).json()["results"][-1]["name"] == "voice 54"
    page = owner.get("/api/v1/voices/?page_size=20&page=3").json()
    assert [v["name"] for v in page["results"]] == [f"voice {i}" for i in range(40, 55)]
    assert page["next"] is None
    assert len(owner.get("/api/v1/voices/?page_size=100000").json()["results"]) == 55  # capped at 200
    assert_error_body(owner.get("/api/v1/voices/?page=9"), "not_found")


# -------------------------------------------------------------------------------- error bodies


def test_400_lists_every_invalid_field(owner, voice):
    payload = {"name": "", "voice": voice.pk, "temperature": 5, "fps": 17, "llm_engine": "nope"}
    response = owner.post("/api/v1/roles/", payload, format="json")
    assert response.status_code == 400
    error = assert_error_body(response, "invalid")
    assert {"name", "temperature", "llm_engine"} <= set(error["fields"])
    assert all(isinstance(msg, str) and msg for msgs in error["fields"].values() for msg in msgs)
    # Model rules that span fields are field errors too.
    fps = owner.post("/api/v1/roles/", {"name": "x", "voice": voice.pk, "fps": 17}, format="json")
    assert "fps" in assert_error_body(fps, "invalid")["fields"]
    base_url = owner.post("/api/v1/roles/", {"name": "x", "voice": voice.pk, "llm_engine": "openai"}, format="json")
    assert "llm_base_url" in assert_error_body(base_url, "invalid")["fields"]
    missing = owner.post("/api/v1/sessions/", {}, format="json")
    assert "role" in assert_error_body(missing, "invalid")["fields"]
    assert not Role.objects.exists()


def test_malformed_json_is_a_400(owner):
    response = owner.post("/api/v1/voices/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert_error_body(response, "parse_error")


def test_401_403_404_405_bodies(world_a, voice):
    anonymous = assert_error_body(APIClient().get("/api/v1/voices/"), "not_authenticated")
    assert anonymous["message"]
    member = APIClient()
    member.force_login(world_a.member)
    forbidden = member.post("/api/v1/voices/", {"name": "x"}, format="json")
    assert forbidden.status_code == 403
    assert_error_body(forbidden, "permission_denied")
    assert_error_body(member.get("/api/v1/voices/999999/"), "not_found")
    assert_error_body(member.get("/api/v1/sessions/not-a-uuid/"), "not_found")
    not_allowed = key_client(world_a.raw_key).put("/api/v1/sessions/", {}, format="json")
    assert not_allowed.status_code == 405
    assert_error_body(not_allowed, "method_not_allowed")


def test_a_browser_session_must_send_the_csrf_token(world_a):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world_a.owner)
    response = client.post("/api/v1/voices/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in assert_error_body(response, "permission_denied")["message"]
    assert not Voice.objects.exists()


# ------------------------------------------------------------------------------------ throttling


def _with_rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def test_throttling_limits_each_api_key_separately(settings, world_a, world_b):
    _with_rates(settings, anon="100/min", user="3/min")
    client_a, client_b = key_client(world_a.raw_key), key_client(world_b.raw_key)
    assert [client_a.get("/api/v1/voices/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = client_a.get("/api/v1/voices/")
    assert throttled.status_code == 429
    assert_error_body(throttled, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert client_b.get("/api/v1/voices/").status_code == 200  # another key, another budget


def test_api_keys_are_not_throttled_as_anonymous_callers(settings, world_a):
    _with_rates(settings, anon="1/min", user="100/min")
    client = key_client(world_a.raw_key)
    assert [client.get("/api/v1/voices/").status_code for _ in range(4)] == [200] * 4
    # The anonymous rate is in force (on the public schema page), just not for keys.
    anonymous = APIClient()
    assert [anonymous.get("/api/v1/schema/").status_code for _ in range(2)] == [200, 429]


def test_throttling_limits_logged_in_users(settings, world_a):
    _with_rates(settings, anon="100/min", user="2/min")
    client = APIClient()
    client.force_login(world_a.member)
    assert [client.get("/api/v1/roles/").status_code for _ in range(3)] == [200, 200, 429]


# ---------------------------------------------------------------------------------- schema, docs


def test_openapi_schema_is_valid_and_documents_every_endpoint_and_the_error_format(world_a):
    response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    expected = {
        "/api/v1/voices/", "/api/v1/voices/{id}/", "/api/v1/prompts/", "/api/v1/prompts/{id}/",
        "/api/v1/avatars/", "/api/v1/avatars/{id}/", "/api/v1/roles/", "/api/v1/roles/{id}/",
        "/api/v1/sessions/", "/api/v1/sessions/{id}/", "/api/v1/sessions/{id}/end/",
        "/api/v1/sessions/{session_pk}/messages/",
    }  # fmt: skip
    assert expected <= set(schema["paths"])
    components = schema["components"]["schemas"]

    def resolve(ref_holder: dict) -> dict:
        return components[ref_holder["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]

    bad_request = resolve(schema["paths"]["/api/v1/roles/"]["post"]["responses"]["400"])
    error = bad_request["properties"]["error"]
    # "fields" is documented but optional: a body that cannot be parsed is a 400 without field errors.
    assert set(error["required"]) == {"code", "message"} and "fields" in error["properties"]
    unauthorized = resolve(schema["paths"]["/api/v1/roles/"]["get"]["responses"]["401"])
    assert set(unauthorized["properties"]["error"]["required"]) == {"code", "message"}
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "Authorization"
    assert {"ApiKeyAuth": []} in schema["paths"]["/api/v1/sessions/"]["post"]["security"]


def test_schema_generation_has_no_warnings(tmp_path):
    """drf-spectacular's own check: every view, serializer and authenticator is understood."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/sessions/{id}/end/" in (tmp_path / "schema.yaml").read_text()


def test_docs_page_renders():
    response = APIClient().get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "/api/v1/schema/" in APIClient().get("/api/v1/docs/?script=").content.decode()


# ---------------------------------------------------------------------------------- LLM API key


def test_llm_api_key_is_encrypted_at_rest_and_never_returned(owner, voice, settings):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1:9"]}
    secret = "sk-very-secret-0123456789"
    payload = {
        "name": "Smart", "voice": voice.pk, "llm_engine": "openai",
        "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "qwen", "llm_api_key": secret,
    }  # fmt: skip
    created = owner.post("/api/v1/roles/", payload, format="json")
    assert created.status_code == 201, created.json()
    role_id = created.json()["id"]
    for response in (created, owner.get(f"/api/v1/roles/{role_id}/"), owner.get("/api/v1/roles/")):
        assert secret not in response.content.decode()
    assert created.json()["has_llm_api_key"] is True
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT llm_api_key FROM {Role._meta.db_table} WHERE id = %s", [role_id])
        stored = cursor.fetchone()[0]
    assert stored and secret not in stored
    assert Role.objects.get(pk=role_id).llm_api_key == secret  # the model decrypts it for the LLM engine


def test_cloud_asr_settings_and_key_are_stored_encrypted_and_reach_the_engine(owner, voice, settings):
    from sessions_app.session_factory import conversation_settings

    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1:9", "asr.example.com"]}
    secret = "sk-dashscope-0123456789"
    payload = {
        "name": "云", "voice": voice.pk, "asr_engine": "dashscope", "asr_base_url": "ws://127.0.0.1:9/api-ws/v1/inference",
        "asr_model": "paraformer-realtime-v2", "asr_api_key": secret, "language": "zh",
    }  # fmt: skip
    created = owner.post("/api/v1/roles/", payload, format="json")
    assert created.status_code == 201, created.json()
    assert secret not in created.content.decode() and created.json()["has_asr_api_key"] is True
    role = Role.objects.get(pk=created.json()["id"])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT asr_api_key FROM {Role._meta.db_table} WHERE id = %s", [role.pk])
        assert secret not in cursor.fetchone()[0]
    cloud = conversation_settings(role, session_id="s").asr_options["settings"]
    assert (cloud.base_url, cloud.api_key, cloud.model) == (payload["asr_base_url"], secret, "paraformer-realtime-v2")
    assert cloud.outbound.allow == ("127.0.0.1:9", "asr.example.com") and cloud.timeout_s > 0
    # a new endpoint without a new key does not take the stored key along
    moved = owner.patch(f"/api/v1/roles/{role.pk}/", {"asr_base_url": "wss://asr.example.com/ws"}, format="json")
    assert moved.status_code == 200 and moved.json()["has_asr_api_key"] is False


@pytest.mark.parametrize(
    ("engine", "url"),
    [("openai_transcribe", ""), ("openai_transcribe", "wss://x.example.com/"), ("dashscope", "https://x.example.com/")],
)
def test_a_cloud_asr_engine_refuses_a_url_of_the_wrong_kind(owner, voice, engine, url):
    payload = {"name": "R", "voice": voice.pk, "asr_engine": engine, "asr_base_url": url}
    response = owner.post("/api/v1/roles/", payload, format="json")
    assert response.status_code == 400 and "asr_base_url" in response.json()["error"]["fields"]


# ------------------------------------------------------------------------------------- uploads


def _files_under(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_an_upload_over_the_tenant_limit_is_refused_and_nothing_is_stored(owner, world_a, settings):
    world_a.tenant.max_upload_mb = 1
    world_a.tenant.save()
    too_big = SimpleUploadedFile("face.mp4", tiny_video() + b"\0" * (1024 * 1024), content_type="video/mp4")
    response = owner.post("/api/v1/avatars/", {"name": "big", "source_video": too_big}, format="multipart")
    assert response.status_code == 400
    error = assert_error_body(response, "invalid")
    assert "source_video" in error["fields"] and "1 MB" in error["fields"]["source_video"][0]
    assert not Avatar.objects.exists()
    assert _files_under(settings.MEDIA_ROOT) == []
    # The same request under the limit stores the file: the check above is not vacuous.
    small = SimpleUploadedFile("face.mp4", tiny_video(), content_type="video/mp4")
    accepted = owner.post("/api/v1/avatars/", {"name": "small", "source_video": small}, format="multipart")
    assert accepted.status_code == 201, accepted.json()
    assert len(_files_under(settings.MEDIA_ROOT / "tenants" / str(world_a.tenant.pk))) >= 1


def test_the_avatar_count_limit_is_a_field_error(owner, world_a):
    world_a.tenant.max_avatars = 1
    world_a.tenant.save()
    Avatar.objects.create(tenant=world_a.tenant, name="one", source_video=SimpleUploadedFile("a.mp4", b"x"))
    video = SimpleUploadedFile("face.mp4", tiny_video(), content_type="video/mp4")
    response = owner.post("/api/v1/avatars/", {"name": "two", "source_video": video}, format="multipart")
    assert response.status_code == 400
    assert_error_body(response, "invalid")
    assert Avatar.objects.count() == 1


ACTION_BODIES = {"say": {"text": "Hi."}, "rtmp": {"action": "stop"}}  # role: the role's own id


@pytest.mark.parametrize(
    "action",
    [a for a in ChatSessionViewSet.get_extra_actions() if a.detail],
    ids=lambda a: a.url_path,
)
def test_every_session_action_answers_with_and_without_the_trailing_slash(world_a, action):
    """The README writes them without (`POST sessions/<id>/say`); a POST cannot follow a redirect to the slash."""
    voice = Voice.objects.create(tenant=world_a.tenant, name="v")
    role = Role.objects.create(tenant=world_a.tenant, name="r", voice=voice)
    [method] = action.mapping
    body = ACTION_BODIES.get(action.url_path) or {"role": role.pk}
    answers = []
    for slash in ("", "/"):
        session = ChatSession.objects.create(tenant=world_a.tenant, role=role)
        url = f"/api/v1/sessions/{session.pk}/{action.url_path}{slash}"
        response = getattr(key_client(world_a.raw_key), method)(url, body if method == "post" else None, format="json")
        answers.append((response.status_code, response.json().get("error", {}).get("code")))
    assert answers[0] == answers[1] and answers[0][0] != 404, answers
