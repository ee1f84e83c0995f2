"""Each engine validates its own settings at save time, and no engine text reaches a client (issue 10, High 2).

The espeak-ng attack: a ``voice_id`` that is a path makes espeak-ng print the file's lines as errors. Saved
through the API or the admin it is now a field error; a row that holds one anyway (written before the check)
fails to start with a fixed message, the details going only to the server log with the session id.
"""

from __future__ import annotations

import json
import logging

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from avatars_app.models import Voice
from sessions_app.client_errors import public_message
from tests.fixtures.live import EventLog, refusal, session_communicator

PATHS = ["../../../../../etc/passwd", "/etc/passwd", "data/secret_key", "../data/secret_key"]


def _voice(client: APIClient, **fields):
    return client.post("/api/v1/voices/", {"name": "V", "language": "en", **fields}, format="multipart")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("engine", ["espeak", "piper", "edge"])
def test_a_path_as_voice_id_is_a_field_error(owner, engine, path, settings):
    settings.LANGUAGE_CODE = "en"
    response = _voice(owner, engine=engine, voice_id=path)
    assert response.status_code == 400, response.json()
    assert "voice_id" in response.json()["error"]["fields"]
    assert not Voice.objects.exists()


def test_espeak_accepts_the_names_it_lists(owner):
    for name in ("en-us", "de", "cmn-latn-pinyin", ""):
        assert _voice(owner, engine="espeak", voice_id=name).status_code == 201, name


def test_piper_accepts_only_voices_the_operator_installed(owner, tmp_path, settings):
    (tmp_path / "zh_CN-huayan-medium.onnx").write_bytes(b"model")
    (tmp_path / "zh_CN-huayan-medium.onnx.json").write_text("{}")
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "PIPER_VOICES_DIR": str(tmp_path)}
    settings.LANGUAGE_CODE = "en"
    assert _voice(owner, engine="piper", voice_id="zh_CN-huayan-medium").status_code == 201
    refused = _voice(owner, engine="piper", voice_id=str(tmp_path / "zh_CN-huayan-medium.onnx"))
    assert refused.status_code == 400
    assert "zh_CN-huayan-medium" in refused.json()["error"]["fields"]["voice_id"][0]  # the installed choices


def test_gpt_sovits_needs_a_server_and_its_own_reference_audio(owner, settings, tmp_path):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1:9880"]}
    no_server = _voice(owner, engine="gpt_sovits")
    assert no_server.status_code == 400 and "server_url" in no_server.json()["error"]["fields"]
    no_audio = _voice(owner, engine="gpt_sovits", server_url="http://127.0.0.1:9880")
    assert no_audio.status_code == 400 and "reference_audio" in no_audio.json()["error"]["fields"]
    import subprocess

    wav = tmp_path / "ref.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=2", str(wav)], check=True)
    upload = SimpleUploadedFile("ref.wav", wav.read_bytes())
    created = _voice(owner, engine="gpt_sovits", server_url="http://127.0.0.1:9880", reference_audio=upload)
    assert created.status_code == 201, created.json()


def test_the_admin_refuses_a_path_as_voice_id(world_a, settings):
    settings.LANGUAGE_CODE = "en"
    client = Client()
    client.force_login(world_a.owner)
    data = {"name": "V", "engine": "espeak", "language": "en", "rate": 1, "pitch": 0, "volume": 1}
    response = client.post("/admin/avatars_app/voice/add/", {**data, "voice_id": "/etc/passwd"})
    assert response.status_code == 200 and "espeak-ng --voices" in response.content.decode()
    assert not Voice.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("accept", "language"), [("zh-CN,zh;q=0.9", "zh-hans"), ("en-US,en;q=0.8", "en")])
async def test_no_engine_text_reaches_the_client(chat_session, world_a, accept, language):
    """A row holding a path (saved before the check) fails to start; the client sees a code and a fixed sentence
    in its language, the engine's words are in the server log with the session id."""

    @database_sync_to_async
    def poison() -> None:
        Voice.objects.filter(pk=chat_session.role.voice_id).update(engine="espeak", voice_id="/etc/passwd")

    await poison()
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    # Its own handler, not caplog: the ASGI application's first import configures logging again.
    logging.getLogger("livehuman.engine_errors").addHandler(handler)
    communicator = session_communicator(
        chat_session.pk, api_key=world_a.raw_key, headers=[(b"accept-language", accept.encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    try:
        error, code = await refusal(log)
    finally:
        logging.getLogger("livehuman.engine_errors").removeHandler(handler)
    assert (error["code"], code) == ("engine_unavailable", 4503)
    assert error["message"] == public_message("engine_unavailable", language)
    everything_sent = json.dumps([event for _, event in log.events])
    assert "passwd" not in everything_sent and "root:" not in everything_sent
    assert any(str(chat_session.pk) in line and "/etc/passwd" in line for line in logged)
