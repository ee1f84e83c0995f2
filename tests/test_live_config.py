"""Live configuration across processes: two real daphne processes on one Redis channel layer.

A session's WebSocket (and media) is on process A; the role's voice, prompt and fps are saved through the API
on process B. Each save reaches A's session: it tells the page what changed (``role_updated``) and plays it: a
new voice, a new prompt, a new fps switched in place (the live state on B shows it). How fast is not asserted
here (a loaded CI machine is no measure of it); the times are printed.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest

from tests.fixtures.live import make_other_role
from tests.test_scale_out import Socket, two_daphnes  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def test_saving_a_role_its_voice_or_prompt_reaches_the_live_session_on_another_process(
    two_daphnes,  # noqa: F811
    world_a,
    _media_root,
):
    a, b = two_daphnes
    role = await asyncio.to_thread(make_other_role, world_a, _media_root)  # fps 30, its own voice and prompt
    headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
    async with aiohttp.ClientSession() as http, httpx.AsyncClient(base_url=f"http://{b}", headers=headers) as rest:
        created = await rest.post("/api/v1/sessions/", json={"role": role.pk}, timeout=10)
        session_id = created.json()["id"]
        socket = Socket(await http.ws_connect(f"ws://{a}/ws/sessions/{session_id}/?api_key={world_a.raw_key}"))
        try:
            await socket.wait_for("state", timeout=60)

            async def save(path: str, body: dict, changed: str) -> float:
                started = time.monotonic()
                response = await rest.patch(path, json=body, timeout=10)
                assert response.status_code == 200, response.text
                update = await socket.wait_for("role_updated", timeout=10, changed=[changed])
                assert update["role"] == role.pk and update["name"] == role.name
                return time.monotonic() - started

            took = {
                "voice": await save(f"/api/v1/voices/{role.voice_id}/", {"rate": 0.9}, "voice"),
                "prompt": await save(f"/api/v1/prompts/{role.prompt_id}/", {"system_text": "Be brief."}, "prompt"),
                "fps": await save(f"/api/v1/roles/{role.pk}/", {"fps": 25}, "avatar"),
            }
            print(f"\nsave on B → role_updated on A's socket: { ({k: round(v * 1000) for k, v in took.items()}) } ms")
            state = (await rest.get(f"/api/v1/sessions/{session_id}/state/", timeout=10)).json()
            assert state["fps"] == 25 and state["role"] == role.pk

            # Saving another role of the tenant leaves this session alone.
            other = await asyncio.to_thread(make_other_role, world_a, _media_root, name="Bystander")
            assert (await rest.patch(f"/api/v1/roles/{other.pk}/", json={"fps": 20}, timeout=10)).status_code == 200
            await rest.post(f"/api/v1/sessions/{session_id}/say/", json={"text": "Still me."}, timeout=10)
            await socket.wait_for("subtitle", timeout=20)
            assert len([e for e in socket.events if e["type"] == "role_updated"]) == 3
        finally:
            await socket.close()
