"""Memory, disk and what a source may open (issue 10, Medium 4 and 5, Low 9), through the API and the build task.

Sources are crafted with PyAV: an MKV whose MJPEG frames grow from 256×256 to 2000×2000 midway, an AVI whose
first packet cannot be decoded, a playlist stored as if it were a video.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from avatars_app.bundle.decode import DecodeLimits, VideoReader
from avatars_app.bundle.errors import BadVideo
from avatars_app.bundle.photo import read_photo
from avatars_app.models import Avatar, Voice
from avatars_app.services import tenant_storage_bytes
from tests.fixtures.callers import assert_error_body
from tests.fixtures.tenancy import key_client
from tests.fixtures.videos import moving_astronaut, upload

LIMITS = DecodeLimits(max_side=1280, min_source_side=128, max_source_side=4096, max_aspect=4.0, max_seconds=120)


def growing_frames(path: Path, small: int = 256, big: int = 2000, before: int = 10, after: int = 3) -> Path:
    """MJPEG in Matroska: each packet is a whole picture, so the stream can change size between packets."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width = stream.height = small
        stream.pix_fmt = "yuvj420p"
        big_codec = av.CodecContext.create("mjpeg", "w")
        big_codec.width = big_codec.height = big
        big_codec.pix_fmt = "yuvj420p"
        big_codec.time_base = Fraction(1, 25)
        for index in range(before + after):
            side, codec = (small, stream.codec_context) if index < before else (big, big_codec)
            picture = np.full((side, side, 3), (index * 20) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in codec.encode(frame):
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 25)
                out.mux(packet)
    return path


def undecodable_first_frame(path: Path) -> Path:
    """Raw video whose packets are far too short for a 320×240 picture: the decoder refuses the first one."""
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "rgb24"
        for index in range(5):
            packet = av.Packet(b"\x01" * 100)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 25)
            out.mux(packet)
    return path


def test_a_frame_size_change_mid_stream_fails_the_build_cleanly(
    world_a, tmp_path, settings, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    client = key_client(world_a.raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, growing_frames(tmp_path / "grows.mkv"))
    assert response.status_code == 201, response.content  # the first frames are fine: only decoding finds it
    body = client.get(f"/api/v1/avatars/{response.json()['id']}/").json()
    assert body["status"] == "failed" and "change size after 0.4 s" in body["error"], body
    assert "256×256 to 2000×2000" in body["error"]


def test_every_frame_counts_towards_the_decoded_pixel_cap(tmp_path):
    small = growing_frames(tmp_path / "steady.mkv", before=20, after=0)
    limits = DecodeLimits(**{**LIMITS.__dict__, "max_total_pixels": 256 * 256 * 10})
    with pytest.raises(BadVideo) as refused, VideoReader(small, limits) as reader:
        list(reader.frames(25))
    assert refused.value.code == "too_much_video"
    with VideoReader(small, LIMITS) as reader:  # the same file under the default cap decodes whole
        assert len(list(reader.frames(25))) == 20


def test_an_undecodable_first_frame_is_a_clean_bad_video(world_a, tmp_path, settings):
    source = undecodable_first_frame(tmp_path / "broken.avi")
    with pytest.raises(BadVideo) as refused:
        VideoReader(source, LIMITS)
    assert refused.value.code == "damaged" and "after 0.0 s" in str(refused.value)
    settings.LANGUAGE_CODE = "en"
    response = upload(key_client(world_a.raw_key), source)  # and at upload, before anything is stored
    assert response.status_code == 400
    assert "damaged or truncated" in assert_error_body(response, "invalid")["fields"]["source_video"][0]


def test_the_builder_opens_no_playlist_even_if_one_was_stored(tmp_path, astronaut_video):
    """Defence in depth: a playlist that reached storage by any path still cannot make the decoder read files."""
    playlist = tmp_path / "stored.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\n{astronaut_video.path}\n#EXT-X-ENDLIST\n")
    with pytest.raises(BadVideo) as refused:
        VideoReader(playlist, LIMITS)
    assert refused.value.code == "not_video"
    with VideoReader(astronaut_video.path, LIMITS) as reader:  # the listed file itself is a fine video
        assert reader.info.width == 320


def test_the_disk_quota_covers_uploads_and_bundles(
    world_a, tmp_path, settings, astronaut_video, eager_builds, django_capture_on_commit_callbacks
):
    settings.LANGUAGE_CODE = "en"
    client = key_client(world_a.raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(client, astronaut_video.path)
    assert first.status_code == 201
    assert client.get(f"/api/v1/avatars/{first.json()['id']}/").json()["status"] == "ready"
    used = tenant_storage_bytes(world_a.tenant)
    assert used > astronaut_video.path.stat().st_size * 5  # the bundle counts, not only the upload
    world_a.tenant.max_storage_mb = 1 + used // (1024 * 1024)
    world_a.tenant.save()
    # An upload that fits its own size limit but not the room left is refused from Content-Length alone.
    big = SimpleUploadedFile("big.mp4", b"\0" * (2 * 1024 * 1024))
    refused = client.post("/api/v1/avatars/", {"name": "big", "source_video": big}, format="multipart")
    assert refused.status_code == 413 and "disk quota" in refused.json()["error"]["message"]
    # A second build of another video would not fit: the build refuses and leaves no bundle behind.
    with django_capture_on_commit_callbacks(execute=True):
        second = upload(client, moving_astronaut(tmp_path / "other.mp4", seconds=2).path)
    assert second.status_code == 201, second.content
    body = client.get(f"/api/v1/avatars/{second.json()['id']}/").json()
    assert body["status"] == "failed" and "disk quota" in body["error"], body
    assert tenant_storage_bytes(world_a.tenant) <= world_a.tenant.max_storage_bytes


def test_files_leave_with_their_rows(world_a, tmp_path, django_capture_on_commit_callbacks):
    voice = Voice.objects.create(tenant=world_a.tenant, name="V")
    with django_capture_on_commit_callbacks(execute=True):
        voice.reference_audio.save("a.wav", ContentFile(b"RIFF-first"))
    first = Path(voice.reference_audio.path)
    with django_capture_on_commit_callbacks(execute=True):
        voice.reference_audio.save("b.wav", ContentFile(b"RIFF-second"))  # replaced: the old file goes
    second = Path(voice.reference_audio.path)
    assert not first.exists() and second.exists()
    with django_capture_on_commit_callbacks(execute=True):
        voice.delete()
    assert not second.exists()
    avatar = Avatar.objects.create(tenant=world_a.tenant, name="A", source_video=ContentFile(b"x", name="a.mp4"))
    source = Path(avatar.source_video.path)
    with django_capture_on_commit_callbacks(execute=True):
        avatar.source_video.save("b.mp4", ContentFile(b"y"))
    assert not source.exists()


def test_a_photo_outside_the_size_limits_is_refused_naming_the_photo(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.full((64, 96, 3), 128, np.uint8)).save(path)
    with pytest.raises(BadVideo) as refused:
        read_photo(path, LIMITS)
    assert refused.value.code == "resolution" and str(refused.value).startswith("The photo is 96×64 pixels")
