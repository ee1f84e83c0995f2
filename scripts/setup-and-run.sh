#!/usr/bin/env bash
# Set everything up and start LiveHuman on embedded defaults (SQLite, in-process channel layer, a real Celery
# worker on an SQLite broker) with a demo tenant, login, role and talking avatar. Set REDIS_URL / DATABASE_URL
# to use Redis and PostgreSQL instead. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
PY=.venv/bin/python
$PY manage.py migrate -v 0
$PY manage.py setup_demo

HOST="${LIVEHUMAN_HOST:-127.0.0.1}"
PORT="${LIVEHUMAN_PORT:-8000}"
LOGS="${LIVEHUMAN_DATA_DIR:-data}/logs"  # beside the database and media of the same data folder
mkdir -p "$LOGS"
echo "==> starting the Celery worker (log: $LOGS/celery.log)"
.venv/bin/celery -A livehuman_site worker --loglevel=INFO --concurrency=1 >>"$LOGS/celery.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
echo "==> LiveHuman on http://$HOST:$PORT/chat/  (admin: http://$HOST:$PORT/admin/)"
.venv/bin/daphne -b "$HOST" -p "$PORT" livehuman_site.asgi:application
