"""Shared fixtures: tenants, users and clients for two tenants, and an isolated MEDIA_ROOT."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.tenancy",
    "tests.fixtures.processes",
]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Every test writes uploads and bundles under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
