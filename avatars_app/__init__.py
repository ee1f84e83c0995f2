"""Voices, prompts, avatars and roles; the Celery task that builds avatar bundles."""
