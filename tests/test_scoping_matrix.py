"""Tenant scoping, table-driven: every admin page and API endpoint × every kind of caller.

A tenant-owned model registered in the admin is covered automatically (its rows
are built by tests/fixtures/rows.py); a new API endpoint is covered by adding a
row to ``API_ROWS``. Tenant A is "acme", tenant B "globex"; every row of A
carries the text ``acme-only``, which must never reach a caller outside A.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Model
from django.forms.models import model_to_dict
from django.urls import reverse

from avatars_app.models import Avatar, Prompt, Role, Voice
from livehuman_site.tenancy.models import Membership, Tenant, is_tenant_owned
from sessions_app.models import ChatSession, Message
from tests.fixtures.callers import CALLERS, SEES_TENANT_A, assert_error_body, tiny_video
from tests.fixtures.rows import build_row

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

A_MARK = "acme-only"
B_MARK = "globex-only"


# --------------------------------------------------------------------------------------------- admin


def _label(model: type[Model]) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


SCOPED_ADMIN_MODELS = sorted((m for m in admin.site._registry if is_tenant_owned(m)), key=_label)
UNSCOPED_ADMIN_MODELS = sorted(
    (m for m in admin.site._registry if not is_tenant_owned(m) and m is not Tenant), key=_label
)


def admin_url(model: type[Model], view: str, obj: Model | None = None) -> str:
    args = [quote(obj.pk)] if obj is not None else []
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


LOGIN, INDEX = "redirect to login", "redirect to admin index"
# caller → (changelist, change page of a row of tenant A)
ADMIN_EXPECT: dict[str, tuple[Any, Any]] = {
    "own_owner": (200, 200),
    "other_owner": (200, INDEX),  # the row "does not exist" for B: Django's admin redirects with a message
    "anonymous": (LOGIN, LOGIN),
    "revoked_key": (LOGIN, LOGIN),  # the admin knows no API keys
    "own_key": (LOGIN, LOGIN),
    "member": (LOGIN, LOGIN),  # not staff
    "superuser": (200, 200),
}


def assert_admin_status(response: Any, expected: Any) -> None:
    if expected == LOGIN:
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), response
    elif expected == INDEX:
        assert response.status_code == 302 and response.url == reverse("admin:index"), response
    else:
        assert response.status_code == expected, response


@pytest.fixture
def admin_rows(cast) -> dict[type[Model], tuple[Model, Model]]:
    """One row of every scoped admin model in each tenant."""
    return {
        model: (
            build_row(model, cast.a.tenant, f"{A_MARK}-{model._meta.model_name}"),
            build_row(model, cast.b.tenant, f"{B_MARK}-{model._meta.model_name}"),
        )
        for model in SCOPED_ADMIN_MODELS
    }


def test_the_admin_registers_tenant_owned_models():
    """The matrix below is only as good as its list of models: it must see the project's admins."""
    labels = {_label(model) for model in SCOPED_ADMIN_MODELS}
    assert {"tenancy.tenantapikey", "sessions_app.chatsession"} <= labels
    for model in SCOPED_ADMIN_MODELS:
        model_admin = admin.site._registry[model]
        assert "get_queryset" not in vars(type(model_admin)) or model is ChatSession, (
            f"{_label(model)}'s admin overrides get_queryset; make sure it calls super() (scoping)"
        )


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_changelist(model, caller, cast, admin_rows):
    row_a, row_b = admin_rows[model]
    response = cast.client(caller).get(admin_url(model, "changelist"))
    expected = ADMIN_EXPECT[caller][0]
    assert_admin_status(response, expected)
    body = response.content.decode()
    link_a, link_b = admin_url(model, "change", row_a), admin_url(model, "change", row_b)
    if caller not in SEES_TENANT_A:
        assert A_MARK not in body and link_a not in body
    if expected == 200:
        shown = {"own_owner": [link_a], "other_owner": [link_b], "superuser": [link_a, link_b]}[caller]
        hidden = {"own_owner": [link_b], "other_owner": [link_a], "superuser": []}[caller]
        assert all(link in body for link in shown), shown
        assert not any(link in body for link in hidden), hidden
        if caller == "own_owner":
            assert B_MARK not in body


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_change_page_of_tenant_a_row(model, caller, cast, admin_rows):
    row_a, _ = admin_rows[model]
    client = cast.client(caller)
    response = client.get(admin_url(model, "change", row_a))
    expected = ADMIN_EXPECT[caller][1]
    assert_admin_status(response, expected)
    if expected == 200:
        assert A_MARK in response.content.decode()
    else:
        followed = client.get(response.url)
        assert A_MARK not in response.content.decode() + followed.content.decode()


@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_admin_other_tenant_cannot_change_delete_or_read_history_by_url(model, cast, admin_rows):
    row_a, _ = admin_rows[model]
    before = model_to_dict(row_a)
    client = cast.client("other_owner")
    attempts = [
        ("post", "change", {"name": "hijacked"}),
        ("get", "delete", None),
        ("post", "delete", {"post": "yes"}),
        ("get", "history", None),
    ]
    for method, view, data in attempts:
        response = getattr(client, method)(admin_url(model, view, row_a), data)
        assert_admin_status(response, INDEX)
        assert A_MARK not in response.content.decode()
    assert model_to_dict(model._default_manager.get(pk=row_a.pk)) == before


def _object_urls(model: type[Model], obj: Model) -> list[str]:
    """Every named admin URL of ``model`` that takes an object id, custom ones (status, preview…) included."""
    urls = []
    for pattern in admin.site._registry[model].get_urls():
        if pattern.name and "object_id" in pattern.pattern.converters:
            urls.append(reverse(f"admin:{pattern.name}", kwargs={"object_id": quote(obj.pk)}))
    return urls


@pytest.mark.parametrize("caller", ["other_owner", "anonymous", "member"])
@pytest.mark.parametrize("model", SCOPED_ADMIN_MODELS, ids=_label)
def test_every_admin_url_with_an_object_id_refuses_other_callers(model, caller, cast, admin_rows):
    row_a, _ = admin_rows[model]
    client = cast.client(caller)
    urls = _object_urls(model, row_a)
    assert admin_url(model, "change", row_a) in urls
    for url in urls:
        response = client.get(url)
        assert response.status_code in {302, 403, 404}, (url, response.status_code)
        assert A_MARK not in response.content.decode(), url


def _owned_by(tenant: Tenant, obj: Model) -> bool:
    if isinstance(obj, Tenant):
        return obj.pk == tenant.pk
    if isinstance(obj, get_user_model()):
        return Membership.objects.filter(user=obj, tenant=tenant).exists()
    return obj.tenant_id == tenant.pk


def test_admin_add_forms_offer_only_own_tenant_rows(cast, admin_rows):
    """Every model choice in every add form (and its inlines) belongs to the owner's tenant."""
    client = cast.client("own_owner")
    checked: list[str] = []
    for model in SCOPED_ADMIN_MODELS:
        response = client.get(admin_url(model, "add"))
        if response.status_code == 403:  # this admin adds no rows (sessions are opened by the API)
            continue
        assert response.status_code == 200, _label(model)
        assert B_MARK not in response.content.decode(), _label(model)
        forms = [response.context["adminform"].form]
        forms += [inline_form.form for formset in response.context["inline_admin_formsets"] for inline_form in formset]
        assert "tenant" not in forms[0].fields, f"{_label(model)}: an owner must not pick the tenant"
        for form in forms:
            for name, form_field in form.fields.items():
                queryset = getattr(form_field, "queryset", None)
                if queryset is None:
                    continue
                foreign = [obj for obj in queryset if not _owned_by(cast.a.tenant, obj)]
                assert not foreign, f"{_label(model)}.{name} offers another tenant's rows: {foreign}"
                everyone = queryset.model._default_manager.all()
                if any(not _owned_by(cast.a.tenant, obj) for obj in everyone):
                    checked.append(f"{_label(model)}.{name}")
    assert checked, "no add form had a foreign key with another tenant's rows to hide"


def test_admin_tenant_list_shows_an_owner_only_their_tenant(cast):
    client = cast.client("own_owner")
    response = client.get(admin_url(Tenant, "changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert admin_url(Tenant, "change", cast.a.tenant) in body
    assert admin_url(Tenant, "change", cast.b.tenant) not in body
    assert_admin_status(client.get(admin_url(Tenant, "change", cast.b.tenant)), INDEX)


@pytest.mark.parametrize("model", UNSCOPED_ADMIN_MODELS, ids=_label)
def test_admin_pages_of_untenanted_models_are_closed_to_tenant_owners(model, cast):
    """Users and groups span tenants: only superusers manage them."""
    assert cast.client("own_owner").get(admin_url(model, "changelist")).status_code == 403
    assert cast.client("superuser").get(admin_url(model, "changelist")).status_code == 200


# ----------------------------------------------------------------------------------------------- API


@dataclass
class TenantObjects:
    """The API-visible rows of one tenant; ``spare_*`` rows have no dependents, so they can be deleted."""

    voice: Voice
    spare_voice: Voice
    prompt: Prompt
    spare_prompt: Prompt
    avatar: Avatar
    spare_avatar: Avatar
    role: Role
    spare_role: Role
    session: ChatSession
    message: Message

    def snapshot(self) -> dict[tuple[str, Any], dict]:
        rows = vars(self).values()
        return {(type(row).__name__, row.pk): _row_state(row) for row in rows}


def _row_state(row: Model) -> dict | None:
    fresh = type(row)._default_manager.filter(pk=row.pk).first()
    return None if fresh is None else {k: v for k, v in model_to_dict(fresh).items() if k != "source_video"}


def _avatar(tenant: Tenant, name: str) -> Avatar:
    video = ContentFile(tiny_video(), name="face.mp4")
    return Avatar.objects.create(tenant=tenant, name=name, source_video=video, status=Avatar.Status.READY)


def make_objects(world, mark: str) -> TenantObjects:
    tenant = world.tenant
    voice = Voice.objects.create(tenant=tenant, name=f"{mark}-voice")
    prompt = Prompt.objects.create(tenant=tenant, name=f"{mark}-prompt", system_text=f"{mark} system text")
    avatar = _avatar(tenant, f"{mark}-avatar")
    role = Role.objects.create(tenant=tenant, name=f"{mark}-role", voice=voice, prompt=prompt, avatar=avatar)
    session = ChatSession.objects.create(tenant=tenant, role=role, user=world.member)
    return TenantObjects(
        voice=voice,
        spare_voice=Voice.objects.create(tenant=tenant, name=f"{mark}-spare-voice"),
        prompt=prompt,
        spare_prompt=Prompt.objects.create(tenant=tenant, name=f"{mark}-spare-prompt", system_text="spare"),
        avatar=avatar,
        spare_avatar=_avatar(tenant, f"{mark}-spare-avatar"),
        role=role,
        spare_role=Role.objects.create(tenant=tenant, name=f"{mark}-spare-role", voice=voice),
        session=session,
        message=Message.objects.create(tenant=tenant, session=session, speaker="user", text=f"{mark}-message"),
    )


def expect(own_owner, other_owner, own_key, member, superuser, anonymous=401, revoked_key=401) -> dict[str, int]:
    return dict(
        own_owner=own_owner,
        other_owner=other_owner,
        own_key=own_key,
        member=member,
        superuser=superuser,
        anonymous=anonymous,
        revoked_key=revoked_key,
    )


LIST = expect(200, 200, 200, 200, 200)
READ = expect(200, 404, 200, 200, 200)
CREATE = expect(201, 201, 201, 403, 201)  # B's owner creates in B: allowed, and checked to land in B
CREATE_LINKED = expect(201, 400, 201, 403, 201)  # the payload names A's rows: B gets a field error
UPDATE = expect(200, 404, 200, 403, 200)
DELETE = expect(204, 404, 204, 403, 204)
SESSION_CREATE = expect(201, 400, 201, 201, 201)
SESSION_ACTION = expect(200, 404, 200, 200, 200)
PUBLIC = expect(200, 200, 200, 200, 200, anonymous=200, revoked_key=200)  # credentials are not even read
NOWHERE = expect(404, 404, 404, 404, 404, anonymous=404, revoked_key=404)


@dataclass(frozen=True)
class ApiRow:
    """One endpoint: how to call it with tenant A's rows, and what each caller gets."""

    name: str
    method: str
    path: Callable[[TenantObjects], str]
    expected: dict[str, int]
    kind: str = "other"  # list | detail | create | other: which body checks apply
    data: Callable[[TenantObjects], dict] | None = None
    model: type[Model] | None = None  # for create: where the new row is looked up
    multipart: bool = False


def config_rows(
    resource: str, attr: str, model: type[Model], create: Callable, expected: dict = CREATE, multipart: bool = False
) -> list[ApiRow]:
    """The five rows of a tenant configuration resource: list, detail, create, update, delete."""

    def detail(objects: TenantObjects, name: str = attr) -> str:
        return f"/api/v1/{resource}/{getattr(objects, name).pk}/"

    collection = f"/api/v1/{resource}/"
    return [
        ApiRow(f"{resource} list", "get", lambda o: collection, LIST, "list"),
        ApiRow(f"{resource} detail", "get", detail, READ, "detail"),
        ApiRow(f"{resource} create", "post", lambda o: collection, expected, "create", create, model, multipart),
        ApiRow(f"{resource} update", "patch", detail, UPDATE, data=lambda o: {"name": "renamed"}),
        ApiRow(f"{resource} delete", "delete", lambda o: detail(o, f"spare_{attr}"), DELETE),
    ]


API_ROWS: list[ApiRow] = [
    ApiRow("api root", "get", lambda o: "/api/v1/", LIST),
    ApiRow("schema", "get", lambda o: "/api/v1/schema/", PUBLIC),
    ApiRow("unknown path", "get", lambda o: "/api/v1/no-such-endpoint/", NOWHERE),
    *config_rows("voices", "voice", Voice, lambda o: {"name": "new voice", "engine": "piper", "language": "en"}),
    *config_rows("prompts", "prompt", Prompt, lambda o: {"name": "new prompt", "system_text": "Be brief."}),
    *config_rows(
        "avatars",
        "avatar",
        Avatar,
        lambda o: {"name": "new avatar", "source_video": SimpleUploadedFile("face.mp4", tiny_video(), "video/mp4")},
        multipart=True,
    ),
    *config_rows(
        "roles",
        "role",
        Role,
        lambda o: {"name": "new role", "voice": o.voice.pk, "prompt": o.prompt.pk, "avatar": o.avatar.pk},
        expected=CREATE_LINKED,
    ),
    ApiRow("sessions list", "get", lambda o: "/api/v1/sessions/", LIST, "list"),
    ApiRow("session detail", "get", lambda o: f"/api/v1/sessions/{o.session.pk}/", READ, "detail"),
    ApiRow(
        "session create",
        "post",
        lambda o: "/api/v1/sessions/",
        SESSION_CREATE,
        "create",
        data=lambda o: {"role": o.role.pk},
        model=ChatSession,
    ),
    ApiRow("session end", "post", lambda o: f"/api/v1/sessions/{o.session.pk}/end/", SESSION_ACTION),
    ApiRow("session ticket", "post", lambda o: f"/api/v1/sessions/{o.session.pk}/ticket/", SESSION_ACTION),
    ApiRow("session messages", "get", lambda o: f"/api/v1/sessions/{o.session.pk}/messages/", READ, "detail"),
]


@pytest.fixture
def api_objects(cast) -> tuple[TenantObjects, TenantObjects]:
    return make_objects(cast.a, A_MARK), make_objects(cast.b, B_MARK)


def _send(client: Any, row: ApiRow, objects: TenantObjects) -> Any:
    kwargs: dict[str, Any] = {}
    if row.data is not None:
        kwargs = {"data": row.data(objects), "format": "multipart" if row.multipart else "json"}
    return getattr(client, row.method)(row.path(objects), **kwargs)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", API_ROWS, ids=lambda row: row.name)
def test_api_matrix(row, caller, cast, api_objects):
    objects_a, _objects_b = api_objects
    before = objects_a.snapshot()
    response = _send(cast.client(caller), row, objects_a)
    status = response.status_code
    assert status == row.expected[caller], (status, response.content[:400])
    body = response.content.decode()
    if status >= 400:
        assert_error_body(response)
    if caller not in SEES_TENANT_A:
        assert A_MARK not in body and str(objects_a.session.pk) not in body
        assert objects_a.snapshot() == before, "a caller outside tenant A changed its rows"
    if status == 200 and row.kind in {"list", "detail"}:
        if caller in SEES_TENANT_A:
            assert A_MARK in body
        if caller in SEES_TENANT_A - {"superuser"}:
            assert B_MARK not in body
        if caller in {"other_owner", "superuser"} and row.kind == "list":
            assert B_MARK in body
    if status == 201:
        created = row.model._default_manager.get(pk=response.json()["id"])
        assert created.tenant == (cast.b.tenant if caller == "other_owner" else cast.a.tenant)


def test_api_create_naming_another_tenants_rows_is_a_field_error(cast, api_objects):
    objects_a, objects_b = api_objects
    client = cast.client("own_owner")
    response = client.post("/api/v1/roles/", {"name": "x", "voice": objects_b.voice.pk}, format="json")
    assert response.status_code == 400
    assert "voice" in assert_error_body(response, "invalid")["fields"]
    response = client.post("/api/v1/sessions/", {"role": objects_b.role.pk}, format="json")
    assert response.status_code == 400
    assert "role" in assert_error_body(response, "invalid")["fields"]
    response = client.patch(f"/api/v1/roles/{objects_a.role.pk}/", {"prompt": objects_b.prompt.pk}, format="json")
    assert response.status_code == 400
    assert "prompt" in assert_error_body(response, "invalid")["fields"]
    assert Role.objects.get(pk=objects_a.role.pk).prompt == objects_a.prompt


def test_api_superuser_reads_every_tenant_but_links_rows_only_within_one(cast, api_objects):
    objects_a, objects_b = api_objects
    client = cast.client("superuser")
    names = {role["name"] for role in client.get("/api/v1/roles/").json()["results"]}
    assert {objects_a.role.name, objects_b.role.name} <= names
    # Editing B's role, the superuser cannot point it at A's voice: a row links within its own tenant.
    response = client.patch(f"/api/v1/roles/{objects_b.role.pk}/", {"voice": objects_a.voice.pk}, format="json")
    assert response.status_code == 400
    assert "voice" in assert_error_body(response)["fields"]
    response = client.patch(f"/api/v1/roles/{objects_b.role.pk}/", {"voice": objects_b.spare_voice.pk}, format="json")
    assert response.status_code == 200
    assert Role.objects.get(pk=objects_b.role.pk).voice == objects_b.spare_voice


# ----------------------------------------------------------------------------------- uploaded files

MEDIA_EXPECT = {**{caller: 200 for caller in SEES_TENANT_A}, "other_owner": 404, "anonymous": 404, "revoked_key": 404}


@pytest.mark.parametrize("caller", CALLERS)
def test_uploaded_files_are_served_to_their_tenant_only(caller, cast):
    audio = SimpleUploadedFile("reference.wav", b"RIFF acme-only audio", content_type="audio/wav")
    voice = Voice.objects.create(tenant=cast.a.tenant, name="cloned", engine="gpt_sovits", reference_audio=audio)
    url = cast.client("own_key").get(f"/api/v1/voices/{voice.pk}/").json()["reference_audio"]
    assert url.startswith("http://testserver/media/tenants/")
    response = cast.client(caller).get(url)
    assert response.status_code == MEDIA_EXPECT[caller]
    content = b"".join(response.streaming_content) if response.status_code == 200 else response.content
    assert (b"acme-only audio" in content) == (caller in SEES_TENANT_A)


def test_media_outside_a_tenant_folder_is_not_served(cast, settings):
    stray = settings.MEDIA_ROOT / "avatars" / "bundle.npy"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"acme-only frames")
    assert cast.client("superuser").get("/media/avatars/bundle.npy").status_code == 404
    assert cast.client("own_owner").get("/media/tenants/../avatars/bundle.npy").status_code == 404


def test_media_paths_cannot_climb_into_another_tenant(cast, settings):
    theirs = settings.MEDIA_ROOT / "tenants" / str(cast.b.tenant.pk) / "secret.wav"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"globex-only audio")
    client = cast.client("own_owner")
    for path in (
        f"tenants/{cast.a.tenant.pk}/../{cast.b.tenant.pk}/secret.wav",
        f"tenants/{cast.b.tenant.pk}/secret.wav",
    ):
        response = client.get(f"/media/{path}")
        assert response.status_code == 404, path
    assert cast.client("other_owner").get(f"/media/tenants/{cast.b.tenant.pk}/secret.wav").status_code == 200


def test_list_filters_accept_only_the_callers_rows(cast, api_objects):
    objects_a, objects_b = api_objects
    client = cast.client("own_key")
    mine = client.get(f"/api/v1/sessions/?role={objects_a.role.pk}")
    assert mine.status_code == 200 and mine.json()["count"] == 1
    # Another tenant's role is as unknown as an id that exists nowhere: no oracle for other tenants' ids.
    theirs, nowhere = (client.get(f"/api/v1/sessions/?role={pk}") for pk in (objects_b.role.pk, 999999))
    assert theirs.status_code == nowhere.status_code == 400
    assert assert_error_body(theirs)["fields"] == assert_error_body(nowhere)["fields"]
