"""LiveHuman Django project: settings, routing, Celery app and tenancy."""

from .celery import app as celery_app

__all__ = ("celery_app",)
