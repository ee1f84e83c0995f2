#!/usr/bin/env bash
# Run the whole test suite: everything on SQLite, then the PostgreSQL-marked part on PostgreSQL.
# Needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (started here if installed but stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
LIVEHUMAN_WITH_BROWSER=1 ./scripts/bootstrap.sh
./scripts/ensure-services.sh

run_pytest() {
  # pytest exits 5 when a selection holds no test; that is not a failure of the product.
  local rc=0
  .venv/bin/python -m pytest "$@" || rc=$?
  if [ "$rc" = 5 ]; then echo "(no tests selected by: $*)"; rc=0; fi
  return "$rc"
}

.venv/bin/ruff check .
.venv/bin/lint-imports  # the floors of .importlinter (DESIGN.md §2)
mkdir -p test-artifacts
run_pytest -q -p no:cacheprovider
DATABASE_URL="${LIVEHUMAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}" \
  run_pytest -q -p no:cacheprovider -m postgres
