"""The chat page in a real browser: Debian's chromium, driven by Playwright, against a real daphne.

A member logs in, opens /chat/, starts a session with a talking role, types a sentence, and the page's own
peer connection shows video frames decoded (and still coming) and real audio arriving. A screenshot is kept in
test-artifacts/.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page

from sessions_app.models import ChatSession
from tests.fixtures.browser import chat_page_as_member, wait_until
from tests.fixtures.bundles import repaint_frames
from tests.fixtures.live import make_talking_role

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
        page.wait_for_timeout(1500)
        after = _stats(page)
        page.screenshot(path=str(ARTIFACTS / "chat-page.png"))

        assert after["video"] > before["video"] + 20, (before, after)  # frames keep coming: ~25 per second
        assert after["audioSamples"] > before["audioSamples"]
        assert after["audioEnergy"] > before["audioEnergy"], "speech, not silence, arrived"
        assert "browser" in page.inner_text("#history")
        assert not errors, errors

        # Green screen with the default key colour: the painted green corner turns transparent in the WebGL
        # output while the face stays opaque.
        page.check("#chroma-enabled")
        page.wait_for_timeout(300)
        corner_alpha, face_alpha = page.evaluate(KEYED_ALPHAS)
        assert corner_alpha < 40 and face_alpha > 215, (corner_alpha, face_alpha)
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
