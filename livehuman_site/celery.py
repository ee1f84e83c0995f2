"""The Celery app, configured from Django settings (``CELERY_*``).

Embedded default: kombu's SQLAlchemy transport on SQLite, so a real worker runs
without a broker server. Its transport polls the database; the class-level
interval is lowered here because passing it through ``broker_transport_options``
reaches SQLAlchemy's ``create_engine`` and breaks the worker.
"""

import os

from celery import Celery, signals
from kombu.transport import sqlalchemy as kombu_sqlalchemy

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")

kombu_sqlalchemy.Transport.polling_interval = 0.1  # seconds; default 1 s makes each build wait a second to start

app = Celery("livehuman")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.celeryd_init.connect
def _serve_metrics(**kwargs: object) -> None:
    """In the worker's main process, before its pool starts: its metrics port, when WORKER_METRICS_PORT is set."""
    from livehuman_site.conf import livehuman_settings
    from livehuman_site.metrics import serve_worker_metrics

    if livehuman_settings.WORKER_METRICS_PORT:
        serve_worker_metrics(int(livehuman_settings.WORKER_METRICS_PORT), livehuman_settings.WORKER_METRICS_ADDR)
