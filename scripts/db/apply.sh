#!/usr/bin/env bash
# Apply pending migrations (or --status, --dry-run). Arguments go to `migrate-wrapper apply` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper apply "$@"
