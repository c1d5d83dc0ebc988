#!/usr/bin/env bash
# Rehearse the pending migrations on a scratch clone of the target and time them (exit 5 over the window).
# Arguments go to `migrate-wrapper measure-window` unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper measure-window "$@"
