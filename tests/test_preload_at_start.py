"""Preload at start: a real daphne with PRELOAD_AT_START loads and warms every active role before it listens,
so its first session loads nothing."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.fixtures.processes import child_env, serving_daphne

pytestmark = [pytest.mark.slow]


def test_daphne_loads_and_warms_active_roles_before_it_listens(transactional_db, talking_role, world_a, tmp_path):
    log = tmp_path / "daphne.log"
    with serving_daphne(log, child_env(LIVEHUMAN_PRELOAD_AT_START="1", LOG_FORMAT="json"), timeout=120) as base_url:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        events = [line["event"] for line in lines]
        listening = next(i for i, event in enumerate(events) if event.startswith("Listening on"))
        warmed = [i for i, event in enumerate(events) if event.startswith("warmed up")]
        assert warmed and max(warmed) < listening, events
        assert any(event.startswith("preloaded and warmed 1 roles") for event in events[:listening]), events
        loads_before = sum(event.startswith("loading") for event in events)

        ws_url = (
            base_url.replace("http", "ws")
            + f"/ws/sessions/{_session(talking_role, world_a)}/?api_key={world_a.raw_key}"
        )
        with connect(ws_url) as socket:
            assert json.loads(socket.recv(timeout=30))["type"] == "state"  # the session is open: its lease is taken
        after = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
        assert sum(event.startswith("loading") for event in after) == loads_before, after[listening:]


def _session(role, world) -> str:
    from sessions_app.models import ChatSession

    return str(ChatSession.objects.create(tenant=world.tenant, role=role, api_key=world.api_key).pk)
