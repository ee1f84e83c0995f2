"""Shared fixtures: tenants, users and clients for two tenants, and an isolated MEDIA_ROOT."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.tenancy",
    "tests.fixtures.callers",
    "tests.fixtures.processes",
    "tests.fixtures.bundles",
    "tests.fixtures.speech",
    "tests.fixtures.webrtc",
    "tests.fixtures.live",
    "tests.fixtures.videos",
    "tests.fixtures.voice",
    "tests.fixtures.turn",
    "tests.fixtures.rtmp_server",
]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Every test writes uploads and bundles under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 is slow on purpose (about 0.25 s a password here); tests create several users each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """API throttles count requests in the cache; each test starts from zero."""
    from django.core.cache import cache

    cache.clear()
