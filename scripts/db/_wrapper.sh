# Sourced by the scripts in scripts/db: runs migrate-wrapper from the project's .venv, else from PATH.
# The caller's working directory is kept, so relative paths such as `--env migrate.env` mean what the operator typed.
set -euo pipefail

MIGRATE_WRAPPER_ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MIGRATE_WRAPPER_ROOT

migrate_wrapper() {
  if [[ -x "$MIGRATE_WRAPPER_ROOT/.venv/bin/migrate-wrapper" ]]; then
    exec "$MIGRATE_WRAPPER_ROOT/.venv/bin/migrate-wrapper" "$@"
  elif command -v migrate-wrapper >/dev/null 2>&1; then
    exec migrate-wrapper "$@"
  fi
  echo "error: migrate-wrapper is not installed; run 'make setup' in $MIGRATE_WRAPPER_ROOT" >&2
  exit 2
}
