"""Build errors and warnings are stored untranslated (template + parameters) and shown in the reader's language;
every template the build can produce has a Chinese translation; library error text never reaches the message."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.translation import gettext, override
from PIL import Image

from avatars_app.build_messages import avatar_error, avatar_warnings, translated
from avatars_app.bundle.decode import DecodeLimits, check_resolution
from avatars_app.bundle.errors import BadVideo
from avatars_app.bundle.photo import read_photo
from avatars_app.models import Avatar
from realtime.avatar.messages import Message

ROOT = Path(settings.BASE_DIR)
LIMITS = DecodeLimits(max_side=640, min_source_side=128, max_source_side=4096, max_aspect=4.0, max_seconds=60)


def _marked_templates() -> list[str]:
    """Every literal passed to ``gettext_noop`` in the apps and the media library: what makemessages extracts."""
    templates = []
    for path in [*(ROOT / "avatars_app").rglob("*.py"), *(ROOT / "realtime").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "gettext_noop" and node.args:
                argument = node.args[0]
                if isinstance(argument, ast.Constant):
                    templates.append(argument.value)
    return templates


def test_every_build_message_has_a_chinese_translation():
    templates = _marked_templates()
    assert len(templates) > 30  # the build's errors and warnings, found in the source
    with override("zh-hans"):
        untranslated = [template for template in templates if gettext(template) == template]
    assert untranslated == []


def test_a_refusal_is_kept_untranslated_and_shown_in_each_language():
    with pytest.raises(BadVideo) as refused:
        check_resolution(96, 64, LIMITS, "photo")
    stored = Message.from_json(refused.value.message.to_json())  # as the row keeps it
    assert stored == refused.value.message
    with override("zh-hans"):
        chinese = translated(stored)
    with override("en"):
        english = translated(stored)
    assert chinese == "该照片为 96×64 像素；形象要求每条边至少 128、至多 4096 像素，且宽高比不超过 4:1。"
    assert english == str(refused.value)
    assert english == (
        "The photo is 96×64 pixels; avatars need at least 128 and at most 4096 pixels on each side, and an aspect "
        "ratio of at most 4:1."
    )


KEPT = (
    "Kept %(start).1f–%(end).1f s (%(length).1f s) of the %(total).1f-s video: the longest stretch showing one face "
    "steadily (the video has %(reasons)s). Check the preview."
)


def test_a_list_of_reasons_is_joined_the_way_each_language_lists():
    reasons = [Message("%(count)d shot cuts", {"count": 2}), Message("the face changes")]
    kept = Message(KEPT, {"start": 1.5, "end": 6.0, "length": 4.5, "total": 9.0, "reasons": reasons})
    assert Message.from_json(kept.to_json()) == kept
    with override("zh-hans"):
        assert translated(kept) == (
            "在 9.0 秒的视频中保留了 1.5–6.0 秒（共 4.5 秒）：这是同一张脸稳定出现的最长片段"
            "（原因：2 处镜头切换、人脸发生变化）。请检查预览。"
        )
    with override("en"):
        assert "steadily (the video has 2 shot cuts, the face changes). Check" in translated(kept)


def test_a_row_from_before_messages_were_kept_shows_its_stored_text():
    old = Avatar(error="No face was found.", warnings="Kept 1.0–3.0 s.\nCheck the preview.")
    with override("zh-hans"):
        assert avatar_error(old) == "No face was found."
        assert avatar_warnings(old) == ["Kept 1.0–3.0 s.", "Check the preview."]


def test_a_damaged_photo_says_so_without_the_decoders_words(tmp_path, caplog):
    path = tmp_path / "cut.png"
    Image.new("RGB", (400, 300), "white").save(path)
    path.write_bytes(path.read_bytes()[:200])  # the header says 400×300; the pixels are gone
    with pytest.raises(BadVideo) as refused:
        read_photo(path, LIMITS)
    assert refused.value.code == "damaged"
    assert str(refused.value) == "The photo cannot be decoded. Upload the complete file again."
    assert refused.value.message.params == {}  # nothing of Pillow's exception travels to the tenant
    assert "cut.png cannot be decoded" in caplog.text  # the detail is in the operator's log
