#!/usr/bin/env bash
# `migrate-wrapper telemetry-check`; arguments go to it unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper telemetry-check "$@"
