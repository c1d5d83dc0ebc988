#!/usr/bin/env bash
# Check db/schema/*.md and db/migrations/migrations.md against the migrations (regenerated in a temporary folder) and
# configs/data-classification.yml against the schema: exit 0 in sync, 1 with a unified diff or the gaps named.
# Arguments go to `migrate-wrapper validate-schema` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper validate-schema "$@"
