from sessions_app.models import ChatSession


def test_api_lists_only_own_tenant_sessions(world_a, world_b):
    from avatars_app.models import Role, Voice
    from tests.fixtures.tenancy import key_client

    voice = Voice.objects.create(tenant=world_b.tenant, name="v")
    role = Role.objects.create(tenant=world_b.tenant, name="r", voice=voice)
    ChatSession.objects.create(tenant=world_b.tenant, role=role)
    response = key_client(world_a.raw_key).get("/api/v1/sessions/")
    assert response.status_code == 200
    assert response.json()["count"] == 0
    response = key_client(world_b.raw_key).get("/api/v1/sessions/")
    assert response.json()["count"] == 1
