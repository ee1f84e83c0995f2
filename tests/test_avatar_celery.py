"""Avatar builds on a real Celery worker (a child process on the Redis broker, sharing this run's file
database and MEDIA_ROOT): the built bundle, progress seen live through the API and the admin, and builds whose
worker is killed mid-way."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from django.test import Client

from avatars_app.bundle.storage import PARTIAL_PREFIX
from avatars_app.models import Avatar
from avatars_app.services import avatar_folder, bundle_location
from realtime.avatar.reader import AvatarBundle
from realtime.face import topology
from tests.fixtures.media import megamind
from tests.fixtures.processes import REDIS_TEST_URL, celery_worker_command, child_env, free_port, running
from tests.fixtures.prometheus import parse, total
from tests.fixtures.tenancy import key_client
from tests.fixtures.videos import assert_bundle_matches, moving_astronaut, no_face, upload

pytestmark = [pytest.mark.redis, pytest.mark.slow]

QUEUE = f"avatar-builds-test-{os.getpid()}"  # only this run's workers take these builds


@pytest.fixture(scope="module", autouse=True)
def _leave_the_test_broker_clean() -> Iterator[None]:
    """The kill tests leave a delivered-but-unacknowledged build behind; drop it and this run's queue."""
    yield
    broker = redis.Redis.from_url(REDIS_TEST_URL)
    broker.delete(QUEUE, "unacked", "unacked_index", "unacked_mutex")
    broker.close()


@pytest.fixture
def to_test_broker(settings) -> Iterator[None]:
    """This process queues builds on the Redis test broker, in this run's own queue."""
    from livehuman_site.celery import app

    settings.LIVEHUMAN = {"AVATAR_BUILD_QUEUE": QUEUE}
    saved = app.conf.broker_url
    app.conf.broker_url = REDIS_TEST_URL
    app._after_fork()  # drop pooled connections to the previous broker
    try:
        yield
    finally:
        app.conf.broker_url = saved
        app._after_fork()


def _start_worker(log: Path, **extra_env: str) -> Iterator[psutil.Process]:
    env = child_env(
        REDIS_URL=REDIS_TEST_URL,
        LIVEHUMAN_AVATAR_BUILD_QUEUE=QUEUE,
        LIVEHUMAN_AVATAR_PROGRESS_INTERVAL_S="0.1",
        **extra_env,
    )
    # prefork with one child: the child can be killed alone, as the OOM killer or a crash would
    command = celery_worker_command("--pool=prefork", "--concurrency=1", "-Q", QUEUE, "--without-mingle")
    command += ["--without-gossip", "--without-heartbeat"]
    with running(command, env, log) as process:
        _wait_for(lambda: " ready." in log.read_text(errors="replace"), 60, f"worker start ({log})")
        yield psutil.Process(process.pid)


@pytest.fixture
def worker(transactional_db, to_test_broker, tmp_path) -> Iterator[psutil.Process]:
    yield from _start_worker(tmp_path / "worker.log")


def _wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _row(avatar_id: int) -> Avatar:
    return Avatar.objects.get(pk=avatar_id)


def _wait_until_built(avatar_id: int) -> Avatar:
    return _wait_for(lambda: _row(avatar_id).status in {"ready", "failed"} and _row(avatar_id), 60, "the build")


def _mid_build(avatar_id: int) -> Avatar | None:
    avatar = _row(avatar_id)
    return avatar if avatar.status == "building" and avatar.stage == "decoding" and avatar.progress >= 5 else None


def test_worker_builds_an_uploaded_video(worker, world_a, tmp_path):
    video = moving_astronaut(tmp_path / "astronaut.mp4", size=(320, 240), seconds=3)
    response = upload(key_client(world_a.raw_key), video.path)
    assert response.status_code == 201
    avatar = _wait_until_built(response.json()["id"])
    assert avatar.status == "ready", avatar.error
    assert_bundle_matches(AvatarBundle.open(bundle_location(avatar)), video)
    assert [p.name for p in avatar_folder(avatar).iterdir()] == [bundle_location(avatar).name]


def test_worker_builds_a_clip_that_cuts_between_faces_keeping_the_longest_shot(worker, world_a):
    """opencv-doc's Megamind.avi cuts between two characters: the build keeps the longest steady stretch of
    one face and names it in the warnings, as uploaded by a user through the real task."""
    response = upload(key_client(world_a.raw_key), megamind(), name="Megamind")
    assert response.status_code == 201, response.json()
    avatar = _wait_until_built(response.json()["id"])
    assert avatar.status == "ready", avatar.error
    bundle = AvatarBundle.open(bundle_location(avatar))
    start, end = bundle.manifest.kept_span
    kept = re.search(r"Kept (\d+\.\d)–(\d+\.\d) s \((\d+\.\d) s\) of the (\d+\.\d)-s video", avatar.warnings)
    assert kept, avatar.warnings
    assert (float(kept[1]), float(kept[2])) == (round(start, 1), round(end, 1))
    assert "shot cut" in avatar.warnings
    assert 3.0 <= end - start < float(kept[4]) - 3.0  # one shot of several, at least 3 s
    # The status API says the same in the reader's language, the reasons listed the Chinese way.
    url = f"/api/v1/avatars/{avatar.pk}/"
    english = key_client(world_a.raw_key).get(url, HTTP_ACCEPT_LANGUAGE="en").json()["warnings"]
    assert kept[0] in english and english == avatar.warnings
    chinese = key_client(world_a.raw_key).get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()["warnings"]
    assert f"中保留了 {kept[1]}–{kept[2]} 秒（共 {kept[3]} 秒）" in chinese, chinese
    assert re.search(r"（原因：\d+ 处镜头切换(、[^）]+)*）。请检查预览。", chinese), chinese
    assert "Kept" not in chinese
    assert bundle.frame_count == round((end - start) * bundle.fps)
    heights = topology.face_height(bundle.landmarks)
    assert heights.max() < 1.35 * heights.min()  # one face throughout: no jump to the other character
    for (fx1, fy1, fx2, fy2), (mx1, my1, mx2, my2) in zip(bundle.face_boxes, bundle.mouth_boxes, strict=True):
        assert fx1 <= mx1 < mx2 <= fx2 and fy1 <= my1 < my2 <= fy2


def test_a_bad_upload_fails_in_the_readers_language(worker, world_a, tmp_path):
    """The worker keeps the refusal untranslated; the status API shows it in each request's Accept-Language."""
    client = key_client(world_a.raw_key)
    response = upload(client, no_face(tmp_path / "wall.mp4"))
    assert response.status_code == 201, response.json()
    url = f"/api/v1/avatars/{response.json()['id']}/"

    def status(language: str) -> dict:
        return client.get(url, HTTP_ACCEPT_LANGUAGE=language).json()

    chinese = _wait_for(lambda: status("zh-hans")["status"] == "failed" and status("zh-hans"), 60, "the build")
    assert chinese["error"] == (
        "视频中没有找到人脸。请让人物正对镜头、光线充足地拍摄，并且在这段 320×240 的视频画面中脸部高度至少 40 像素。"
    )
    assert status("en")["error"] == (
        "No face was found in the video. Film the person facing the camera, well lit, with the face at least "
        "40 pixels tall in this video's 320×240 frame."
    )


def test_progress_is_live_in_the_api_and_the_admin(worker, world_a, tmp_path):
    video = moving_astronaut(tmp_path / "astronaut.mp4", size=(480, 360), seconds=3, scale=0.75)
    admin = Client()
    admin.force_login(world_a.owner)
    with video.path.open("rb") as handle:
        data = {"name": "Live", "source_video": handle, "fps": 25, "lipsync_engine": "default"}
        assert admin.post("/admin/avatars_app/avatar/add/", data).status_code == 302
    avatar_id = Avatar.objects.get(name="Live").pk
    api = key_client(world_a.raw_key)
    seen_api, seen_admin = [], []

    def finished() -> bool:
        body = api.get(f"/api/v1/avatars/{avatar_id}/").json()
        state = admin.get(f"/admin/avatars_app/avatar/{avatar_id}/build-status/").json()
        seen_api.append((body["status"], body["stage"], body["progress"]))
        seen_admin.append((state["status"], state["stage"], state["progress"]))
        return body["status"] in {"ready", "failed"} and state["status"] == body["status"]

    _wait_for(finished, 60, "build", every=0.05)
    for seen in (seen_api, seen_admin):
        running = [p for status, stage, p in seen if status == "building" and 0 < p < 100]
        assert running, seen  # caught mid-build
        assert running == sorted(running)  # progress only grows
        assert seen[-1] == ("ready", "ready", 100), seen
    page = admin.get(f"/admin/avatars_app/avatar/{avatar_id}/change/").content.decode()
    assert 'data-running="false"' in page and "preview.png" in page
    preview = admin.get(f"/admin/avatars_app/avatar/{avatar_id}/preview.png")
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")


def test_killed_worker_child_build_is_delivered_again_and_finishes(worker, world_a, tmp_path):
    video = moving_astronaut(tmp_path / "astronaut.mp4", size=(480, 360), seconds=3, scale=0.75)
    avatar_id = upload(key_client(world_a.raw_key), video.path).json()["id"]
    _wait_for(lambda: _mid_build(avatar_id), 60, "the build to be under way")
    (child,) = worker.children()
    child.send_signal(signal.SIGKILL)  # mid-build: frames half written in a partial folder
    killed_at = time.time()

    avatar = _wait_until_built(avatar_id)
    assert avatar.status == "ready", avatar.error
    assert avatar.build_started_at.timestamp() > killed_at  # the message came back and the build started over
    assert_bundle_matches(AvatarBundle.open(bundle_location(avatar)), video)
    assert not any(p.name.startswith(PARTIAL_PREFIX) for p in avatar_folder(avatar).iterdir())
    assert child.pid not in [c.pid for c in worker.children()]


def test_build_of_a_killed_worker_is_requeued_by_rebuild(transactional_db, to_test_broker, world_a, tmp_path):
    video = moving_astronaut(tmp_path / "astronaut.mp4", size=(480, 360), seconds=3, scale=0.75)
    client = key_client(world_a.raw_key)
    first = _start_worker(tmp_path / "first-worker.log")
    process = next(first)
    avatar_id = upload(client, video.path).json()["id"]
    _wait_for(lambda: _mid_build(avatar_id), 60, "the build to be under way")
    os.killpg(process.pid, signal.SIGKILL)  # the whole worker: nobody is left to give the message back
    process.wait(10)
    first.close()

    stuck = _row(avatar_id)
    assert stuck.status == "building" and not stuck.bundle_path
    assert [p.name.startswith(PARTIAL_PREFIX) for p in avatar_folder(stuck).iterdir()] == [True]

    with contextmanager(_start_worker)(tmp_path / "second-worker.log"):
        assert client.post(f"/api/v1/avatars/{avatar_id}/rebuild/").status_code == 202
        avatar = _wait_until_built(avatar_id)
    assert avatar.status == "ready", avatar.error
    assert_bundle_matches(AvatarBundle.open(bundle_location(avatar)), video)
    assert [p.name for p in avatar_folder(avatar).iterdir()] == [bundle_location(avatar).name]


def test_worker_counts_its_builds_on_its_metrics_port(transactional_db, to_test_broker, world_a, tmp_path):
    """The prefork worker's child builds; the main process serves the children's counts (multiprocess mode)."""
    port = free_port()
    (tmp_path / "prometheus").mkdir()
    env = {"LIVEHUMAN_WORKER_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    for _ in _start_worker(tmp_path / "worker.log", **env):
        video = moving_astronaut(tmp_path / "astronaut.mp4", size=(320, 240), seconds=2)
        ready = _wait_until_built(upload(key_client(world_a.raw_key), video.path).json()["id"])
        faceless = no_face(tmp_path / "faceless.mp4")  # a real video, but nobody in it: the build fails
        failed = _wait_until_built(upload(key_client(world_a.raw_key), faceless, name="Nobody").json()["id"])
        assert (ready.status, failed.status) == ("ready", "failed"), (ready.error, failed.error)
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    assert total(samples, "livehuman_avatar_builds_total", outcome="ready") == 1
    assert total(samples, "livehuman_avatar_builds_total", outcome="failed") == 1
    assert total(samples, "livehuman_avatar_build_seconds_count", outcome="ready") == 1
    assert 0 < total(samples, "livehuman_avatar_build_seconds_sum", outcome="ready") < 60
