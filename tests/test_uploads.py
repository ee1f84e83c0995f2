"""Uploads are accepted by what they are and tenant files never act as pages (issue 10, High 1 and Medium 4).

Through the real REST API and admin: an HTML page as reference audio or avatar source is refused, a playlist
is refused, real audio/video/photos are stored under the extension of their detected type, and what is served
from /media/ carries nosniff, a sandbox CSP and (unless passive media) Content-Disposition: attachment.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from avatars_app.models import Avatar, Voice

EVIL_HTML = b"<!doctype html><script>fetch('/admin/auth/user/').then(r => r.text()).then(alert)</script>"


def _ffmpeg(tmp_path: Path, name: str, *args: str) -> bytes:
    path = tmp_path / name
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path.read_bytes()


@pytest.fixture
def wav(tmp_path) -> bytes:
    return _ffmpeg(tmp_path, "tone.wav", "-f", "lavfi", "-i", "sine=frequency=220:duration=2")


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _post_voice(client: APIClient, name: str, data: bytes):
    upload = SimpleUploadedFile(name, data, content_type="audio/wav")
    return client.post(
        "/api/v1/voices/", {"name": "Cloned", "engine": "piper", "reference_audio": upload}, format="multipart"
    )


def test_html_as_reference_audio_is_refused_and_nothing_is_stored(owner, settings):
    settings.LANGUAGE_CODE = "en"
    response = _post_voice(owner, "evil.html", EVIL_HTML)
    assert response.status_code == 400
    assert "not audio" in response.json()["error"]["fields"]["reference_audio"][0]
    disguised = _post_voice(owner, "evil.wav", EVIL_HTML)  # the name does not matter either
    assert disguised.status_code == 400
    assert not Voice.objects.exists() and _files(Path(settings.MEDIA_ROOT)) == []


def test_real_audio_is_stored_under_its_detected_type_and_served_as_passive_media(owner, wav, world_a):
    response = _post_voice(owner, "sample.html", wav)
    assert response.status_code == 201, response.json()
    voice = Voice.objects.get(pk=response.json()["id"])
    assert voice.reference_audio.name.endswith("/sample.wav")
    served = owner.get(response.json()["reference_audio"])
    assert served.status_code == 200 and served["Content-Type"] in ("audio/wav", "audio/x-wav")
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert not served.get("Content-Disposition", "").startswith("attachment")  # passive media plays inline


def test_a_stored_page_is_served_as_a_sandboxed_download(owner, world_a):
    """Files stored before the checks (or by any other path) still never render as a page of the platform."""
    voice = Voice.objects.create(tenant=world_a.tenant, name="Old", engine="gpt_sovits")
    voice.reference_audio.save("evil.html", ContentFile(EVIL_HTML))
    served = owner.get(f"/media/{voice.reference_audio.name}")
    assert served.status_code == 200
    assert served["Content-Type"] == "application/octet-stream"
    assert served["Content-Disposition"].startswith("attachment")
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "sandbox; default-src 'none'"


def test_reference_audio_limits(owner, tmp_path, settings):
    settings.LANGUAGE_CODE = "en"
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "VOICE_REFERENCE_MAX_SECONDS": 1}
    long = _ffmpeg(tmp_path, "long.wav", "-f", "lavfi", "-i", "sine=duration=3")
    response = _post_voice(owner, "long.wav", long)
    assert response.status_code == 400 and "1 seconds" in response.json()["error"]["fields"]["reference_audio"][0]
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "VOICE_REFERENCE_MAX_MB": 0}
    assert _post_voice(owner, "short.wav", long[:20000]).status_code == 400
    assert not Voice.objects.exists()


def test_the_admin_refuses_html_as_reference_audio(world_a, settings):
    settings.LANGUAGE_CODE = "en"
    client = Client()
    client.force_login(world_a.owner)
    data = {"name": "V", "engine": "gpt_sovits", "language": "en", "rate": 1, "pitch": 0, "volume": 1}
    upload = SimpleUploadedFile("evil.html", EVIL_HTML, content_type="text/html")
    response = client.post("/admin/avatars_app/voice/add/", {**data, "reference_audio": upload})
    assert response.status_code == 200 and "not audio" in response.content.decode()
    assert not Voice.objects.exists()


def _post_avatar(client: APIClient, name: str, data: bytes):
    upload = SimpleUploadedFile(name, data, content_type="video/mp4")
    return client.post("/api/v1/avatars/", {"name": "Face", "source_video": upload}, format="multipart")


def test_html_and_playlists_are_not_avatar_sources(owner, tmp_path, settings, astronaut_video):
    settings.LANGUAGE_CODE = "en"
    secret = tmp_path / "elsewhere.mp4"
    secret.write_bytes(astronaut_video.path.read_bytes())  # a real video elsewhere on the server's disk
    playlists = {
        "face.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        "list.txt": f"ffconcat version 1.0\nfile '{secret}'\n",
        "face.mp4": f"#EXTM3U\n#EXTINF:10,\n{secret}\n#EXT-X-ENDLIST\n",  # a playlist named like a video
    }
    for name, text in {**playlists, "evil.mp4": EVIL_HTML.decode()}.items():
        response = _post_avatar(owner, name, text.encode())
        assert response.status_code == 400, name
        assert "not a video or photo" in response.json()["error"]["fields"]["source_video"][0]
    assert not Avatar.objects.exists() and _files(Path(settings.MEDIA_ROOT)) == []


@pytest.mark.parametrize(("args", "extension"), [(["-c:v", "libx264"], "mp4"), (["-c:v", "libvpx"], "mkv")])
def test_videos_are_stored_under_their_detected_container(owner, tmp_path, args, extension):
    clip = _ffmpeg(tmp_path, f"clip.{extension}", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", *args)
    response = _post_avatar(owner, "upload.html", clip)
    assert response.status_code == 201, response.json()
    assert Avatar.objects.get(pk=response.json()["id"]).source_video.name.endswith(f"/upload.{extension}")


@pytest.mark.parametrize(("pil_format", "extension"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_photos_are_accepted_as_avatar_sources(owner, pil_format, extension):
    buffer = io.BytesIO()
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(buffer, pil_format)
    response = _post_avatar(owner, "portrait.bin", buffer.getvalue())
    assert response.status_code == 201, response.json()
    assert Avatar.objects.get(pk=response.json()["id"]).source_video.name.endswith(f"/portrait.{extension}")


def test_pages_carry_the_site_csp_and_the_api_docs_come_from_the_platform():
    client = Client()
    for url in ("/accounts/login/", "/api/v1/docs/"):
        response = client.get(url)
        assert response.status_code == 200
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "object-src 'none'" in policy
    docs = client.get("/api/v1/docs/").content.decode()
    assert "cdn." not in docs and "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "<script>" not in docs  # its start-up script is a file of its own, allowed by script-src 'self'
    assert "<style" not in docs and "/static/livehuman/api_docs.css" in docs  # so are its styles (style-src 'self')
    script = Client().get("/api/v1/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
    assert Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
