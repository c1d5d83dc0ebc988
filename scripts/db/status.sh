#!/usr/bin/env bash
# Read-only status of a component. Arguments go to `migrate-wrapper status` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper status "$@"
