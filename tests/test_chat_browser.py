"""The chat page in a real browser: Debian's chromium, driven by Playwright, against a real daphne.

A member logs in, opens /chat/, starts a session with a talking role, types a sentence, and the page's own
peer connection shows video frames decoded (and still coming) and real audio arriving. A screenshot is kept in
test-artifacts/.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page

from sessions_app.models import ChatSession
from testkit.bundles import repaint_frames, write_random_wav2lip_checkpoint
from tests.fixtures.browser import chat_page_as_member, wait_until
from tests.fixtures.live import make_talking_role
from tests.fixtures.processes import child_env, serving_daphne

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GREEN_SIDE = 128  # px of the avatar's top-left corner painted green
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

INBOUND_STATS = """async () => {
  const result = {video: 0, audioSamples: 0, audioEnergy: 0, state: window.liveHuman.pc?.connectionState};
  if (!window.liveHuman.pc) return result;
  const stats = await window.liveHuman.pc.getStats();
  stats.forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") result.video = r.framesDecoded || 0;
    if (r.kind === "audio") {
      result.audioSamples = r.totalSamplesReceived || 0;
      result.audioEnergy = r.totalAudioEnergy || 0;
    }
  });
  return result;
}"""


KEYED_ALPHAS = """() => {
  const keyed = document.getElementById("avatar-canvas");
  const probe = document.createElement("canvas");
  probe.width = keyed.width; probe.height = keyed.height;
  const context = probe.getContext("2d");
  context.drawImage(keyed, 0, 0);
  const alpha = (x, y) => context.getImageData(x, y, 1, 1).data[3];
  return [alpha(20, 20), alpha(Math.round(keyed.width * 0.43), Math.round(keyed.height * 0.25))];
}"""


def _paint_green_corner(bundle: Path) -> None:
    """A green-screen patch in the avatar's frames, for the keying check."""

    def paint(rgb: np.ndarray) -> np.ndarray:
        rgb[:GREEN_SIDE, :GREEN_SIDE] = (0, 255, 0)
        return rgb

    repaint_frames(bundle, paint)


def _stats(page: Page) -> dict:
    return page.evaluate(INBOUND_STATS)


def _wait_for(page: Page, condition, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = _stats(page)
        if condition(stats):
            return stats
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}; last stats {stats}")


def _wait_until_keyed(page: Page, timeout: float) -> bool:
    """Whether the WebGL output keys the green corner out (alpha < 40) and keeps the face (alpha > 215) within
    ``timeout``: the first keyed frame is drawn when the next video frame comes, later on a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        corner_alpha, face_alpha = page.evaluate(KEYED_ALPHAS)
        if corner_alpha < 40 and face_alpha > 215:
            return True
        page.wait_for_timeout(100)
    return False


def test_member_talks_to_the_avatar_in_chromium(daphne_server, world_a, _media_root, settings):
    role = make_talking_role(world_a, _media_root, frame_count=1)
    _paint_green_corner(Path(_media_root) / role.avatar.bundle_path)
    ARTIFACTS.mkdir(exist_ok=True)
    with chat_page_as_member(daphne_server, world_a.member, settings) as chat:
        page, errors = chat.page, chat.errors
        policy = page.evaluate("fetch('/chat/').then((r) => r.headers.get('content-security-policy'))")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy  # the page runs under the CSP
        page.select_option("#role", str(role.pk))

        page.click("#start-button")
        _wait_for(page, lambda s: s["state"] == "connected" and s["video"] > 0, 30, "the first decoded frames")
        page.wait_for_selector("#say-text:not([disabled])")

        before = _stats(page)
        page.fill("#say-text", "Hello from the browser. The avatar should say this sentence out loud.")
        page.press("#say-text", "Enter")
        page.wait_for_selector("#state-badge[data-state=speaking]", timeout=20_000)
        wait_until(page, "document.getElementById('subtitle').textContent.length > 0", 10_000)
        # Frames keep coming (a second's worth at the role's 25 fps) and speech, not silence, arrives: waited for,
        # not slept on, so a loaded machine only takes longer; frames that stop still fail here.
        _wait_for(
            page,
            lambda s: (
                s["video"] > before["video"] + 25
                and s["audioSamples"] > before["audioSamples"]
                and s["audioEnergy"] > before["audioEnergy"]
            ),
            30,
            "a second of new frames and the voice",
        )
        page.screenshot(path=str(ARTIFACTS / "chat-page.png"))
        assert "browser" in page.inner_text("#history")
        assert not errors, errors

        # Green screen with the default key colour: the painted green corner turns transparent in the WebGL
        # output while the face stays opaque.
        page.check("#chroma-enabled")
        keyed = _wait_until_keyed(page, timeout=10)
        assert keyed, page.evaluate(KEYED_ALPHAS)
        page.screenshot(path=str(ARTIFACTS / "chat-page-green-screen.png"))

        page.click("#start-button")  # Stop
        page.wait_for_selector("#state-badge[data-state=idle]")

    session = ChatSession.objects.get(role=role)
    deadline = time.monotonic() + 5
    while session.state != ChatSession.State.ENDED and time.monotonic() < deadline:
        time.sleep(0.1)
        session.refresh_from_db()
    assert session.state == ChatSession.State.ENDED
    assert session.end_reason == ChatSession.EndReason.CLIENT


def _wait_for_text(page: Page, selector: str, text: str, timeout: float) -> None:
    """Poll from Python: the page's CSP forbids the string evaluation ``wait_for_function`` relies on."""
    deadline = time.monotonic() + timeout
    while text not in (seen := page.inner_text(selector)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r}; it shows {seen!r}")
        page.wait_for_timeout(100)


def test_the_chinese_demo_role_reads_in_chinese_in_chromium(daphne_server, world_a, _media_root, settings):
    """The Chinese role on a Chinese browser: page, voice-input note, spoken greeting, subtitles, history and
    errors all in Chinese. Screenshot: test-artifacts/chat-page-chinese.png."""
    from avatars_app.demo_data import ZH_GREETING, ZH_ROLE_NAME
    from avatars_app.models import Role, Voice

    talking = make_talking_role(world_a, _media_root, frame_count=1)
    voice = Voice.objects.create(tenant=world_a.tenant, name="中文", engine="espeak", language="zh")
    role = Role.objects.create(
        tenant=world_a.tenant, name=ZH_ROLE_NAME, avatar=talking.avatar, voice=voice, language="zh",
        asr_engine="funasr", greeting=ZH_GREETING,
    )  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    typed = "今天是2026年11月29日，访问量增长了35%。"
    with chat_page_as_member(daphne_server, world_a.member, settings, context_options={"locale": "zh-CN"}) as chat:
        page, errors = chat.page, chat.errors
        assert page.inner_text("#start-button") == "开始"
        page.select_option("#role", str(role.pk))
        note = page.locator("#voice-note")
        assert note.is_visible() and "FunASR" in note.inner_text() and "打字输入可以正常使用" in note.inner_text()

        page.click("#start-button")
        _wait_for(page, lambda s: s["state"] == "connected" and s["video"] > 0, 30, "the first decoded frames")
        # the greeting is spoken as the first message, its sentences shown as subtitles
        _wait_for_text(page, "#history", "总计", 30)  # the greeting's timings: it has been said to the end
        # no FunASR models here: voice input reports it, in Chinese, and typing still works
        _wait_for_text(page, "#error-line", "语音识别暂时不可用。", 20)
        assert page.inner_text("#error-line") == "错误：语音识别暂时不可用。"  # full-width colon, no space
        page.wait_for_selector("#say-text:not([disabled])")
        page.fill("#say-text", typed)
        page.press("#say-text", "Enter")
        _wait_for_text(page, "#subtitle", "2026年11月29日", 20)
        _wait_for_text(page, "#history", "访问量增长了35%。", 30)
        after = _wait_for(page, lambda s: s["audioEnergy"] > 0, 10, "speech energy")
        page.screenshot(path=str(ARTIFACTS / "chat-page-chinese.png"), full_page=True)
        history = page.inner_text("#history")
        assert ZH_GREETING in history and typed in history and "（已打断）" not in history, history
        assert history.count("数字人 ") == 2  # the speaker label is Chinese too
        assert "识别" not in history and "–" not in history  # typed and greeted: no ASR stage, no empty stage
        assert "抖动缓冲" in page.inner_text("#readout")
        assert after["audioSamples"] > 0 and not errors, errors

        # an operator saves the role's voice through the API while the session runs: the page says so
        api_key = {"Authorization": f"Api-Key {world_a.raw_key}"}
        saved = httpx.patch(
            f"{daphne_server}/api/v1/voices/{voice.pk}/",
            json={"rate": 1.2},
            headers=api_key,
            timeout=30,
        )
        assert saved.status_code == 200, saved.text
        _wait_for_text(page, "#history", f"{ZH_ROLE_NAME} 已更新：新音色从下一句开始。", 10)
        page.screenshot(path=str(ARTIFACTS / "chat-page-role-updated.png"), full_page=True)

        # the session is ended from elsewhere (REST): the page says why, in Chinese, not the reason's code
        session_id = page.evaluate("window.liveHuman.session.id")
        httpx.post(f"{daphne_server}/api/v1/sessions/{session_id}/end/", headers=api_key, timeout=30)
        _wait_for_text(page, "#error-line", "会话已结束：由客户端结束", 10)


VIDEO_SIZES = """() => {
  const video = document.getElementById("avatar-video");
  const box = video.getBoundingClientRect();
  return {frame: [video.videoWidth, video.videoHeight], shown: [Math.round(box.width), Math.round(box.height)]};
}"""


def test_a_degraded_session_is_noted_and_its_half_size_frames_fill_the_video_in_chromium(
    transactional_db, world_a, _media_root, settings, tmp_path
):
    """A Wav2Lip role far slower than real time on this CPU steps down its ladder: the page says so, in Chinese,
    and the half-size frames it then receives are shown at the same size on the page as the full-size ones were.
    Screenshot: test-artifacts/chat-page-degraded.png."""
    role = make_talking_role(world_a, _media_root, frame_count=1)
    role.avatar.lipsync_engine = "wav2lip"
    role.avatar.save(update_fields=["lipsync_engine"])
    env = child_env(
        LIVEHUMAN_WAV2LIP_CHECKPOINT=str(write_random_wav2lip_checkpoint(tmp_path / "wav2lip.pth")),
        LIVEHUMAN_LIPSYNC_BATCH_SIZE="2",
        LIVEHUMAN_DEGRADE_HOLD_S="0.5",
        LIVEHUMAN_DEGRADE_WINDOW_S="4",
        LIVEHUMAN_DEGRADE_LATE_FRAMES="2",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        serving_daphne(tmp_path / "daphne.log", env) as base_url,
        chat_page_as_member(base_url, world_a.member, settings, context_options={"locale": "zh-CN"}) as chat,
    ):
        page, errors = chat.page, chat.errors
        assert not page.locator("#quality-note").is_visible()
        page.select_option("#role", str(role.pk))
        page.click("#start-button")
        _wait_for(page, lambda s: s["state"] == "connected" and s["video"] > 0, 90, "the first decoded frames")
        wait_until(page, "document.getElementById('avatar-video').videoWidth === 512", 10_000)
        full = page.evaluate(VIDEO_SIZES)
        page.wait_for_selector("#say-text:not([disabled])")
        page.fill("#say-text", "Counting slowly to keep the model busy. " * 6)
        page.press("#say-text", "Enter")
        _wait_for_text(page, "#quality-note", "轻量口型引擎", 90)  # the last level: the lighter engine
        note = page.inner_text("#quality-note")
        assert note.startswith("画质已降低以保持流畅：") and "20 帧/秒" in note and "半分辨率" in note, note
        wait_until(page, "document.getElementById('avatar-video').videoWidth === 256", 20_000)
        half = page.evaluate(VIDEO_SIZES)
        page.screenshot(path=str(ARTIFACTS / "chat-page-degraded.png"))
        assert half["frame"] == [256, 256] and full["frame"] == [512, 512]
        assert half["shown"] == full["shown"] and half["shown"][0] > 256, (full, half)  # scaled back up
        assert not errors, errors


PHONE_1X = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 1}


def test_frames_come_at_the_size_the_phone_shows_them_and_grow_with_the_window_in_chromium(
    daphne_server, world_a, _media_root, settings
):
    """The page tells the server its video element's size in device pixels: on a 390 × 844 phone (pixel ratio 1)
    the 512-px avatar's frames arrive about as wide as the element, not at 512; a wider window brings them back
    to the avatar's own size, never beyond it."""
    role = make_talking_role(world_a, _media_root, frame_count=1)
    with chat_page_as_member(daphne_server, world_a.member, settings, context_options=PHONE_1X) as chat:
        page, errors = chat.page, chat.errors
        page.select_option("#role", str(role.pk))
        page.tap("#start-button")
        _wait_for(page, lambda s: s["state"] == "connected" and s["video"] > 0, 30, "the first decoded frames")
        wait_until(page, "document.getElementById('avatar-video').videoWidth > 0", 10_000)
        phone = page.evaluate(VIDEO_SIZES)
        ratio = page.evaluate("window.devicePixelRatio")
        shown = phone["shown"][0] * ratio
        # the element's width in device pixels, rounded up to the next step of 32 px
        assert shown <= phone["frame"][0] < shown + 33 and phone["frame"][0] < 512, (phone, ratio)
        assert phone["frame"][0] == phone["frame"][1]  # the square avatar stays square

        page.set_viewport_size({"width": 1280, "height": 900})  # the stage grows past the avatar's 512 px
        wait_until(page, "document.getElementById('avatar-video').videoWidth === 512", 10_000)
        desktop = page.evaluate(VIDEO_SIZES)
        assert desktop["frame"] == [512, 512] and desktop["shown"][0] > 512, desktop
        assert not errors, errors
