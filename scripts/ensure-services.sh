#!/usr/bin/env bash
# Make sure the Redis and PostgreSQL servers the tests talk to are up; start them if installed but stopped.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  sleep 0.5
fi
if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  sleep 1
fi
up 6379 || { echo "Redis is not reachable at 127.0.0.1:6379 (install redis-server)" >&2; exit 1; }
up 5432 || { echo "PostgreSQL is not reachable at 127.0.0.1:5432 (install postgresql)" >&2; exit 1; }
