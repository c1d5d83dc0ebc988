#!/usr/bin/env bash
# Builds the pinned golang-migrate (with the postgres driver) into .tools/bin, unless that version is already there.
# The version is pinned in one place: migrate_wrapper/versions.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/.tools/bin"
version="$(sed -n 's/^GOLANG_MIGRATE_VERSION = "\(.*\)"$/\1/p' "$root/migrate_wrapper/versions.py")"
[[ -n "$version" ]] || { echo "error: cannot read GOLANG_MIGRATE_VERSION from migrate_wrapper/versions.py" >&2; exit 2; }

if [[ -x "$bin/migrate" ]] && [[ "$("$bin/migrate" -version 2>&1)" == "$version" ]]; then
  echo "golang-migrate $version already in .tools/bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "error: Go is needed to build golang-migrate; install it (https://go.dev/doc/install)" >&2; exit 2; }
mkdir -p "$bin"
echo "building golang-migrate $version into .tools/bin …"
GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -mod=mod" go install -tags 'postgres' -ldflags "-X main.Version=$version" \
  "github.com/golang-migrate/migrate/v4/cmd/migrate@v$version"
"$bin/migrate" -version
