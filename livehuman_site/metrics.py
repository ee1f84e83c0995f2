"""``/metrics``: this process's Prometheus metrics (django-prometheus's request and database metrics, and the
product's own from ``realtime.metrics``), for a scraper holding the bearer token ``METRICS_TOKEN``.

Each daphne process answers with its own counts, so each is scraped at its own address, never through the
load balancer (README "Metrics"). Without a token configured the endpoint does not exist.
"""

from __future__ import annotations

import hmac
import os

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

from .conf import livehuman_settings


@csrf_exempt
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = livehuman_settings.METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return ExportToDjangoView(request)


def serve_worker_metrics(port: int, addr: str) -> None:
    """A Celery worker's metrics on ``addr:port`` (a plain HTTP thread: the worker has no web server); with
    PROMETHEUS_MULTIPROC_DIR set, the sum over its pool's child processes."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
