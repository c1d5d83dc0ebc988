#!/usr/bin/env bash
# The main job on the embedded default: status, dry-run, apply, status, rollback of the newest migration, status —
# for both components, through the runbook's own scripts, against the local PostgreSQL (`make pg-start`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
env_file="${ENV_FILE:-migrate.env}"
export MIGRATE_BIN="${MIGRATE_BIN:-$root/.tools/bin/migrate}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for component in operational analytics; do
  say "$component: status"
  scripts/db/apply.sh --status --component "$component" --env "$env_file" --log-format text
  say "$component: dry run"
  scripts/db/apply.sh --component "$component" --env "$env_file" --dry-run --yes --log-format text
  say "$component: apply"
  scripts/db/apply.sh --component "$component" --env "$env_file" --yes --log-format text
  say "$component: status"
  scripts/db/status.sh --component "$component" --env "$env_file" --log-format text
  newest="$(scripts/db/status.sh --component "$component" --env "$env_file" --format json --log-format text |
    .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["components"][0]["applied"][-1]["id"])')"
  say "$component: roll back $newest"
  scripts/db/rollback.sh --component "$component" --env "$env_file" --version "$newest" --yes --log-format text
  say "$component: status"
  scripts/db/status.sh --component "$component" --env "$env_file" --log-format text
done
say "make db-migrate-status"
make --no-print-directory db-migrate-status ENV_FILE="$env_file"
