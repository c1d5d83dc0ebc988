#!/usr/bin/env bash
# Read-only smoke test of a component after an apply or a rollback (exit 1 naming what failed).
# Arguments go to `migrate-wrapper smoke-test` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper smoke-test "$@"
