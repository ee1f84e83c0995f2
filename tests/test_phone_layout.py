"""The pages on a phone and in Chinese: Debian's chromium through Playwright, a 390-px touch viewport, a real daphne.

On a phone the header wraps inside the screen (brand, tenant, user, links and the language menu all visible, none
overlapping), and once a session runs the video, the text box and the talk button are all on the first screen, so
a user types or holds to talk without scrolling past the avatar. The talk button works by touch. The pages' font
stack names the common Chinese fonts, and the admin is titled LiveHuman in both languages. Screenshots are kept in
test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from livehuman_site.tenancy.models import Membership, Tenant
from tests.fixtures.browser import chat_page_as_member, wait_until
from tests.fixtures.live import make_talking_role

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PHONE_WIDTH, PHONE_HEIGHT = 390, 844
PHONE = {
    "viewport": {"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
    "has_touch": True,
    "is_mobile": True,
    "device_scale_factor": 2,
}
CHINESE_FONTS = ("PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC")

HEADER_BOXES = """() => {
  const boxes = [...document.querySelectorAll('.topbar .brand, .topbar nav > *')]
    .filter((el) => el.offsetParent !== null && !(el.tagName === 'FORM' && el.children.length === 0))
    .map((el) => {
      const r = el.getBoundingClientRect();
      return {what: el.className || el.tagName, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    });
  return {boxes, pageWidth: document.documentElement.scrollWidth};
}"""

CHINESE_DRAWN_AS_GLYPHS = """() => {
  // Two different characters drawn in the body's font: as missing-glyph boxes they come out the same.
  const font = getComputedStyle(document.body).fontFamily;
  const draw = (text) => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 40;
    const context = canvas.getContext('2d');
    context.font = `32px ${font}`;
    context.fillText(text, 2, 32);
    return context.getImageData(0, 0, 40, 40).data.join(',');
  };
  return draw('上') !== draw('下');
}"""

BOX = """(selector) => {
  const r = document.querySelector(selector).getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
}"""


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"] - 1
        and b["left"] < a["right"] - 1
        and a["top"] < b["bottom"] - 1
        and b["top"] < a["bottom"] - 1
    )


def _assert_header_fits(page: Page) -> None:
    layout = page.evaluate(HEADER_BOXES)
    # A phone browser widens the layout to fit what overflows, so the width is compared with the screen's.
    assert layout["pageWidth"] <= PHONE_WIDTH, f"the page is wider than the phone: {layout}"
    boxes = layout["boxes"]
    assert len(boxes) >= 5, boxes  # brand, tenant menu, user, links, language menu
    for box in boxes:
        assert box["left"] >= 0 and box["right"] <= PHONE_WIDTH, f"cut off at the screen's edge: {box}"
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not _overlap(first, second), f"{first} runs into {second}"


def _assert_chinese_fonts(page: Page) -> None:
    fonts = page.evaluate("getComputedStyle(document.body).fontFamily")
    for font in CHINESE_FONTS:
        assert font in fonts, fonts
    # Debian's fonts-noto-cjk (scripts/bootstrap.sh installs it) is such a font: Chinese must not come out as boxes.
    assert page.evaluate(CHINESE_DRAWN_AS_GLYPHS), "Chinese drawn as missing-glyph boxes"


def _touch(devtools, kind: str, x: float, y: float) -> None:
    """A raw touch event through the DevTools protocol: Playwright's touchscreen only taps, and holding to talk
    is a press that lasts."""
    points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
    devtools.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


@pytest.mark.browser
@pytest.mark.slow
def test_chat_on_a_phone_header_wraps_and_controls_are_on_the_first_screen(
    daphne_server, world_a, _media_root, settings
):
    world_a.tenant.name = "Acme 上海直播电商演示工作室 Live Commerce"  # sorts first: the current tenant
    world_a.tenant.save()
    second = Tenant.objects.create(name="Second Studio", slug="second")
    Membership.objects.create(user=world_a.member, tenant=second, level=Membership.Level.MEMBER)
    role = make_talking_role(world_a, _media_root)
    ARTIFACTS.mkdir(exist_ok=True)
    with chat_page_as_member(daphne_server, world_a.member, settings, context_options=PHONE) as chat:
        page = chat.page
        page.screenshot(path=str(ARTIFACTS / "phone-chat-header.png"))
        _assert_header_fits(page)

        page.select_option("#role", str(role.pk))
        page.tap("#start-button")
        page.wait_for_selector("#say-text:not([disabled])", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "phone-chat.png"))
        assert page.evaluate("window.scrollY") == 0
        video, text_box, talk = (page.evaluate(BOX, s) for s in ("#stage-view", "#say-text", "#talk-button"))
        assert video["bottom"] <= PHONE_HEIGHT and video["right"] <= PHONE_WIDTH, video
        for control in (text_box, talk):
            assert control["top"] >= video["bottom"] and control["bottom"] <= PHONE_HEIGHT, (video, control)
            assert control["left"] >= 0 and control["right"] <= PHONE_WIDTH, control

        page.tap("#say-text")
        page.keyboard.type("Hello from a phone.")
        page.tap("#say-button")
        wait_until(page, "document.getElementById('history').textContent.includes('phone')", 20_000)

        # Hold to talk by touch: the microphone is on while the finger is down and off when it lifts.
        mic_on = "window.liveHuman.mic.getAudioTracks()[0].enabled"
        assert page.evaluate(mic_on) is False
        x, y = (talk["left"] + talk["right"]) / 2, (talk["top"] + talk["bottom"]) / 2
        devtools = page.context.new_cdp_session(page)
        _touch(devtools, "touchStart", x, y)
        wait_until(page, mic_on, 5_000)
        _touch(devtools, "touchMove", x + 3, y + 2)  # a finger is never quite still
        page.wait_for_timeout(200)
        assert page.evaluate(mic_on) is True
        _touch(devtools, "touchEnd", x, y)
        wait_until(page, f"!{mic_on}", 5_000)
        _assert_chinese_fonts(page)
        assert not chat.errors, chat.errors


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_admin_is_titled_livehuman_with_chinese_fonts_on_a_phone(daphne_server, world_a, settings, language):
    with chat_page_as_member(daphne_server, world_a.owner, settings, context_options=PHONE) as chat:
        page = chat.page
        page.context.add_cookies([{"name": "django_language", "value": language, "url": daphne_server}])
        page.goto(f"{daphne_server}/admin/")
        title, heading = page.title(), page.inner_text("#site-name")
        page.screenshot(path=str(ARTIFACTS / f"phone-admin-{language}.png"))
        assert "LiveHuman" in title and "LiveHuman" in heading, (title, heading)
        for django_name in ("Django", "站点管理"):
            assert django_name not in title and django_name not in heading, (title, heading)
        _assert_chinese_fonts(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
