#!/usr/bin/env bash
# Revert a migration and everything applied after it. Arguments go to `migrate-wrapper rollback` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper rollback "$@"
