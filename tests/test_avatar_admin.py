"""The admin of voices, prompts, avatars and roles: upload queues the build, the build panel and its JSON
status, the preview strip with the boxes drawn, quotas, and tenant scoping."""

from __future__ import annotations

import html
import re
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from django.test import Client
from django.utils.translation import override

from avatars_app.bundle.preview import FACE_COLOUR, LIPS_COLOUR, SPAN_COLOUR, TIMELINE_HEIGHT
from avatars_app.models import Avatar, Prompt, Role, Voice
from avatars_app.services import bundle_location
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.mouth_atlas import ATLAS, MouthAtlas, atlas_grid
from tests.fixtures.videos import no_face, two_faces

ADMIN = "/admin/avatars_app"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture
def owner(world_a) -> Client:
    client = Client()
    client.force_login(world_a.owner)
    return client


def _add_avatar(client: Client, path, **fields):
    with path.open("rb") as handle:
        data = {"name": "Admin upload", "source_video": handle, "fps": 25, "lipsync_engine": "default", **fields}
        return client.post(f"{ADMIN}/avatar/add/", data)


def test_upload_in_the_admin_queues_and_builds(
    owner, astronaut_video, settings, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    add_page = owner.get(f"{ADMIN}/avatar/add/").content.decode()
    assert 'name="source_video"' in add_page and "Saving with a video or photo queues its build." in add_page
    with django_capture_on_commit_callbacks(execute=True):
        response = _add_avatar(owner, astronaut_video.path)
    assert response.status_code == 302, response.content.decode()[:2000]
    avatar = Avatar.objects.get(name="Admin upload")
    assert (avatar.status, avatar.progress, avatar.frame_count) == ("ready", 100, astronaut_video.frame_count)
    assert len(avatar.source_checksum) == 64 and avatar.source_size == astronaut_video.path.stat().st_size


def test_upload_over_quota_is_refused_in_the_form(owner, world_a, tmp_path, settings):
    """A file over the limit by less than the multipart allowance passes the Content-Length check; the form
    refuses it."""
    settings.LANGUAGE_CODE = "en"
    world_a.tenant.max_upload_mb = 0
    world_a.tenant.save()
    small = tmp_path / "small.mp4"
    small.write_bytes(b"\0" * 10_000)
    response = _add_avatar(owner, small)
    assert response.status_code == 200
    assert "limit is 0 MB" in response.content.decode()
    assert not Avatar.objects.exists()


def test_upload_over_quota_is_refused_from_its_content_length_before_the_body_is_parsed(owner, world_a):
    world_a.tenant.max_upload_mb = 1
    world_a.tenant.save()
    response = owner.post(  # a small body that claims 300 MB: only the header can have decided
        f"{ADMIN}/avatar/add/", {"name": "huge"}, CONTENT_LENGTH=str(300 * 1024 * 1024), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 413
    assert "The file is 299.9 MB; this tenant's limit is 1 MB." in response.content.decode()  # less part headers
    assert not Avatar.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_admin_upload_over_quota_is_413_over_a_real_daphne(daphne_server, world_a):
    world_a.tenant.max_upload_mb = 1
    world_a.tenant.save()
    client = Client()
    client.force_login(world_a.owner)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    video = ("big.mp4", b"\0" * (2 * 1024 * 1024), "video/mp4")
    with httpx.Client(base_url=daphne_server, cookies=cookies, timeout=60) as http:
        response = http.post(f"{ADMIN}/avatar/add/", data={"name": "big", "fps": "25"}, files={"source_video": video})
    assert response.status_code == 413, response.text[:500]
    assert "该租户的上限是 1 MB" in response.text  # in the admin's language, Chinese by default
    assert not Avatar.objects.exists()


def test_ready_change_page_shows_bar_and_preview(owner, ready_avatar):
    page = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/change/").content.decode()
    assert 'class="avatar-build"' in page and 'data-running="false"' in page
    assert '<progress class="avatar-build__bar" max="100" value="100"' in page
    assert f"{ADMIN}/avatar/{ready_avatar.pk}/build-status/" in page
    assert f'src="{ADMIN}/avatar/{ready_avatar.pk}/preview.png"' in page
    assert "avatars_app/build_progress.js" in page


def test_build_status_json_follows_the_row(owner, ready_avatar):
    Avatar.objects.filter(pk=ready_avatar.pk).update(status="building", stage="decoding", progress=42)
    page = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/change/").content.decode()
    assert 'data-running="true"' in page and 'value="42"' in page and "preview.png" not in page
    state = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/build-status/").json()
    assert state["status"] == "building" and state["running"] is True
    assert (state["stage"], state["progress"], state["preview_url"]) == ("decoding", 42, "")
    assert state["stage_label"] == "正在解码源文件"  # the owner's language is the default, zh-hans
    Avatar.objects.filter(pk=ready_avatar.pk).update(status="failed", stage="failed", error="No face was found.")
    state = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/build-status/").json()
    assert (state["status"], state["running"], state["error"]) == ("failed", False, "No face was found.")


def test_preview_strip_draws_the_face_box_the_lips_and_the_kept_span(owner, ready_avatar):
    response = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/preview.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    strip = cv2.cvtColor(cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "avatar-preview.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    bundle = AvatarBundle.open(bundle_location(ready_avatar))
    assert strip.shape[0] == 160 + TIMELINE_HEIGHT
    assert strip.shape[1] > 5 * 160 * bundle.manifest.width / bundle.manifest.height
    scale = 160 / bundle.manifest.height
    x1, y1, x2, _ = (int(v) for v in bundle.face_boxes[0])  # first tile shows frame 0
    top_edge = strip[round(y1 * scale), round(x1 * scale) + 3 : round(x2 * scale) - 3].astype(int)
    assert np.abs(top_edge - FACE_COLOUR).sum(axis=1).mean() < 60  # the box is drawn along the face's top
    lips = np.round(bundle.lips["outer"][0] * scale).astype(int)
    on_lips = strip[lips[:, 1], lips[:, 0]].astype(int)
    assert (np.abs(on_lips - LIPS_COLOUR).sum(axis=1) < 150).mean() > 0.6  # the detected lips are drawn
    band = strip[160 + TIMELINE_HEIGHT // 2].astype(int)
    assert (np.abs(band - SPAN_COLOUR).sum(axis=1) < 30).mean() > 0.9  # the whole clip was kept: all blue
    page = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/change/").content.decode()
    start, end = bundle.manifest.kept_span
    total = bundle.manifest.source_seconds
    assert f"保留了 {total:.1f} 秒视频中的第 {start:.1f}–{end:.1f} 秒" in page  # the page is in Chinese by default


def test_atlas_grid_shows_the_persons_mouths(owner, ready_avatar):
    page = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/change/").content.decode()
    assert f'src="{ADMIN}/avatar/{ready_avatar.pk}/atlas.png"' in page
    response = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/atlas.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    grid = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    bundle = AvatarBundle.open(bundle_location(ready_avatar))
    atlas = MouthAtlas.load(bundle.extra_folder(ATLAS))
    assert grid.shape == atlas_grid(atlas).shape  # one tile per opening level down, per width level across
    filled = grid.reshape(-1, 3).astype(int)
    assert (np.abs(filled - 200).max(axis=1) > 12).mean() > 0.02  # mouths, not only the grey of empty cells


def test_other_tenants_avatar_is_not_found(world_b, ready_avatar):
    stranger = Client()
    stranger.force_login(world_b.owner)
    for suffix in ("change/", "build-status/", "preview.png", "atlas.png"):
        assert stranger.get(f"{ADMIN}/avatar/{ready_avatar.pk}/{suffix}").status_code in (302, 404)


def test_rebuild_action_queues_builds(owner, ready_avatar, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = owner.post(
            f"{ADMIN}/avatar/", {"action": "rebuild", "_selected_action": [ready_avatar.pk]}, follow=True
        )
    assert response.status_code == 200 and len(queued) == 1
    ready_avatar.refresh_from_db()
    assert (ready_avatar.status, ready_avatar.stage) == ("pending", "queued")


def test_voice_prompt_and_role_admin(owner, world_a, ready_avatar):
    voice = Voice.objects.create(tenant=world_a.tenant, name="Joe")
    prompt = Prompt.objects.create(tenant=world_a.tenant, name="Guide", system_text="Be brief.")
    prompt.system_text = "Be brief and kind."
    prompt.save()
    role = Role.objects.create(
        tenant=world_a.tenant, name="Host", voice=voice, prompt=prompt, avatar=ready_avatar, llm_api_key="sk-secret",
        asr_engine="dashscope", asr_api_key="sk-asr-secret",
    )  # fmt: skip
    for model in ("voice", "prompt", "role", "avatar"):
        assert owner.get(f"{ADMIN}/{model}/").status_code == 200
    prompt_page = owner.get(f"{ADMIN}/prompt/{prompt.pk}/change/").content.decode()
    assert "Be brief." in prompt_page and "Be brief and kind." in prompt_page  # version 1 kept inline
    role_page = owner.get(f"{ADMIN}/role/{role.pk}/change/").content.decode()
    assert "sk-secret" not in role_page and "sk-asr-secret" not in role_page
    data = {
        "name": "Host",
        "voice": voice.pk,
        "prompt": prompt.pk,
        "avatar": ready_avatar.pk,
        "asr_engine": "dashscope",
        "asr_api_key": "",
        "llm_engine": "echo",
        "llm_api_key": "",
        "temperature": 0.7,
        "language": "en",
        "fps": 25,
        "active": "on",
    }
    response = owner.post(f"{ADMIN}/role/{role.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    role.refresh_from_db()
    assert role.llm_api_key == "sk-secret" and role.asr_api_key == "sk-asr-secret"  # left empty: kept


def _admin_page_in_chromium(client: Client, url: str, screenshot: str) -> list[dict]:
    """Open ``url`` in headless chromium, its page and images fetched first through ``client`` (Playwright's loop
    makes Django refuse database access inside the route handler) and static files from the finders; save a
    screenshot under test-artifacts/admin/ and return each build panel element's class and computed display."""
    from django.contrib.staticfiles import finders
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import CHROMIUM_ARGS

    html = client.get(url).content
    images = {src: client.get(src) for src in re.findall(r'src="(/admin/[^"]+)"', html.decode())}
    origin = "http://admin.test"

    def serve(route):
        path = route.request.url.removeprefix(origin)
        if path.startswith("/static/"):
            found = finders.find(path.removeprefix("/static/").split("?")[0])
            if found:
                return route.fulfill(path=found)
            return route.fulfill(status=404)
        if path == url:
            return route.fulfill(body=html, content_type="text/html; charset=utf-8")
        if path in images:
            return route.fulfill(body=images[path].content, content_type=images[path]["Content-Type"])
        return route.fulfill(status=404)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", serve)
            page.goto(origin + url)
            (ARTIFACTS / "admin").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "admin" / screenshot), full_page=True)
            return page.evaluate(
                """() => [...document.querySelectorAll('.avatar-build > *')].map(
                    e => ({cls: e.className, display: getComputedStyle(e).display}))"""
            )
        finally:
            browser.close()


def test_build_panel_hides_the_empty_error_box_in_a_browser(owner, ready_avatar):
    panel = _admin_page_in_chromium(owner, f"{ADMIN}/avatar/{ready_avatar.pk}/change/", "avatar-change.png")
    error = next(element for element in panel if "avatar-build__error" in element["cls"])
    assert error["display"] == "none"  # admin's .errornote {display: block} must not beat [hidden]


@pytest.mark.parametrize(("language", "status_label"), [("zh-hans", "就绪"), ("en", "ready")])
def test_ready_panel_shows_the_translated_status_once(owner, ready_avatar, settings, language, status_label):
    settings.LANGUAGE_CODE = language
    page = owner.get(f"{ADMIN}/avatar/{ready_avatar.pk}/change/").content.decode()
    row = page[page.index('<div class="avatar-build__row">') :]
    row = row[: row.index("</div>")]
    assert f'avatar-build__status--ready">{status_label}</span>' in row
    assert '<span class="avatar-build__stage"></span>' in row  # the stage "ready" would only repeat the status


def test_photo_avatar_preview_is_one_portrait(
    owner, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks
):
    import skimage

    settings.LANGUAGE_CODE = "en"
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(cv2.resize(skimage.data.astronaut(), (320, 320)), cv2.COLOR_RGB2BGR))
    with django_capture_on_commit_callbacks(execute=True):
        assert _add_avatar(owner, portrait).status_code == 302
    avatar = Avatar.objects.get(name="Admin upload")
    assert avatar.status == "ready", avatar.error
    page = owner.get(f"{ADMIN}/avatar/{avatar.pk}/change/").content.decode()
    caption = page[page.index("<figcaption>") : page.index("</figcaption>")]
    assert "A photo (one portrait)" in caption and "frame" not in caption
    strip = cv2.imdecode(np.frombuffer(owner.get(f"{ADMIN}/avatar/{avatar.pk}/preview.png").content, np.uint8), 1)
    assert strip.shape[:2] == (160 + TIMELINE_HEIGHT, 160)  # one square tile, not a row of the same portrait
    _admin_page_in_chromium(owner, f"{ADMIN}/avatar/{avatar.pk}/change/", "avatar-change-photo.png")  # to look at


@pytest.mark.parametrize(
    ("language", "labels"),
    [
        ("en", ("Source video or photo:", "Frames per second:", "Saving with a video or photo queues its build.")),
        ("zh-hans", ("源视频或照片:", "帧率:", "保存带视频或照片的形象后会排队构建。")),
    ],
)
def test_add_page_labels_say_photos_are_accepted(owner, settings, language, labels):
    settings.LANGUAGE_CODE = language
    page = owner.get(f"{ADMIN}/avatar/add/").content.decode()
    for label in labels:
        assert label in page
    assert "Fps" not in page


def test_engine_labels_cover_every_registered_engine():
    from avatars_app.engine_labels import ENGINE_LABELS
    from realtime.engines.registry import ENGINES, LABELS

    registered = {name for engines in ENGINES.values() for name in engines}
    assert set(ENGINE_LABELS) == set(LABELS) and registered <= set(ENGINE_LABELS)
    with override("en"):
        assert {name: str(label) for name, label in ENGINE_LABELS.items()} == LABELS  # same English as the registry


@pytest.mark.parametrize(
    ("page", "translated", "english"),
    [
        ("role", "回声（原样朗读输入的文字）", "echo (speak the text as given)"),
        ("role", "FunASR 流式 Paraformer（离线中文）", "FunASR streaming paraformer (offline 中文)"),
        ("voice", "Piper（离线）", "Piper (offline)"),
        ("avatar", "默认：使用本人的口型（视频）或移动嘴唇（照片）", "Default: the person's own mouths"),
    ],
)
def test_engine_choices_are_translated_in_the_chinese_admin(owner, settings, page, translated, english):
    settings.LANGUAGE_CODE = "zh-hans"
    html = owner.get(f"{ADMIN}/{page}/add/").content.decode()
    assert translated in html and english not in html


@pytest.mark.parametrize(
    ("language", "label", "other"),
    [
        ("zh-hans", "默认：使用本人的口型（视频）或移动嘴唇（照片）", "Default: the person's own mouths"),
        ("en", "Default: the person's own mouths (video) or moved lips (photo)", "默认"),
    ],
)
def test_the_avatar_list_and_its_filter_name_engines_in_the_users_language(
    owner, ready_avatar, settings, language, label, other
):
    settings.LANGUAGE_CODE = language
    page = html.unescape(owner.get(f"{ADMIN}/avatar/").content.decode())
    assert f'<td class="field-lipsync_engine">{label}</td>' in page  # the column
    assert f'?lipsync_engine__exact={ready_avatar.lipsync_engine}">{label}</a>' in page  # the filter
    assert other not in page


def test_build_error_and_warnings_are_shown_in_the_admin_users_language(
    owner, tmp_path, eager_builds, django_capture_on_commit_callbacks
):
    """The build stores its messages untranslated; the change page and the live panel's JSON show them in the
    language the user chose (the language switcher), not in the worker's."""
    with django_capture_on_commit_callbacks(execute=True):
        assert _add_avatar(owner, two_faces(tmp_path / "two.mp4").path, name="Two faces").status_code == 302
        assert _add_avatar(owner, no_face(tmp_path / "wall.mp4"), name="Nobody").status_code == 302
    warned, failed = Avatar.objects.get(name="Two faces"), Avatar.objects.get(name="Nobody")
    assert (warned.status, failed.status) == ("ready", "failed"), (warned.error, failed.error)
    expected = {
        "zh-hans": (
            "画面中同时出现了 2 张人脸，形象使用其中最大、最稳定的一张。请检查预览。",
            "视频中没有找到人脸。请让人物正对镜头、光线充足地拍摄，"
            "并且在这段 320×240 的视频画面中脸部高度至少 40 像素。",
        ),
        "en": (
            "2 faces are visible at the same time; the avatar uses the largest and steadiest one. Check the preview.",
            "No face was found in the video. Film the person facing the camera, well lit, with the face at least 40 "
            "pixels tall in this video's 320×240 frame.",
        ),
    }
    for language, (warning, error) in expected.items():
        owner.post("/i18n/setlang/", {"language": language, "next": "/admin/"})
        warned_page = html.unescape(owner.get(f"{ADMIN}/avatar/{warned.pk}/change/").content.decode())
        failed_page = html.unescape(owner.get(f"{ADMIN}/avatar/{failed.pk}/change/").content.decode())
        assert f"<li>{warning}</li>" in warned_page
        assert f'<p class="avatar-build__error errornote">{error}</p>' in failed_page
        assert owner.get(f"{ADMIN}/avatar/{warned.pk}/build-status/").json()["warnings"][0] == warning
        assert owner.get(f"{ADMIN}/avatar/{failed.pk}/build-status/").json()["error"] == error


def test_a_bundle_from_an_older_version_says_to_build_again_in_the_readers_language(owner, world_a, _media_root):
    """A ready avatar whose bundle this version cannot read: the admin (the language switcher) and the API
    (Accept-Language) say what to do, in the reader's language, without the server's paths."""
    from realtime.avatar.format import BUNDLE_VERSION, MANIFEST_FILE
    from tests.fixtures.live import make_talking_role
    from tests.fixtures.tenancy import key_client

    avatar = make_talking_role(world_a, _media_root).avatar
    api = key_client(world_a.raw_key)
    assert api.get(f"/api/v1/avatars/{avatar.pk}/").json()["error"] == ""  # its bundle reads
    manifest = bundle_location(avatar) / MANIFEST_FILE
    manifest.write_text(manifest.read_text().replace(f'"version": {BUNDLE_VERSION}', '"version": 1', 1))
    expected = {
        "zh-hans": "该形象由旧版 LiveHuman 构建，需要重新构建：请在形象列表中选中它，执行“重新构建所选形象”。",
        "en": "This avatar was built by an older version of LiveHuman and must be built again: select it in the "
        "avatar list and run 'Build the selected avatars again'.",
    }
    for language, error in expected.items():
        owner.post("/i18n/setlang/", {"language": language, "next": "/admin/"})
        page = html.unescape(owner.get(f"{ADMIN}/avatar/{avatar.pk}/change/").content.decode())
        assert f'<p class="avatar-build__error errornote">{error}</p>' in page
        assert owner.get(f"{ADMIN}/avatar/{avatar.pk}/build-status/").json()["error"] == error
        assert api.get(f"/api/v1/avatars/{avatar.pk}/", HTTP_ACCEPT_LANGUAGE=language).json()["error"] == error
