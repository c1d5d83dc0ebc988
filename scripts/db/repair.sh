#!/usr/bin/env bash
# `migrate-wrapper repair`; arguments go to it unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_wrapper.sh"
migrate_wrapper repair "$@"
