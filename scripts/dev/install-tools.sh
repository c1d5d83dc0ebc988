#!/usr/bin/env bash
# Builds the pinned Go tools into .tools/bin, each skipped when that version is already there:
# golang-migrate (with the postgres driver) and rhysd/actionlint (the tests lint .github/workflows with it).
# Versions are pinned in one place: migrate_wrapper/versions.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/.tools/bin"

pin() {
  local value
  value="$(sed -n "s/^$1 = \"\([^\"]*\)\".*$/\1/p" "$root/migrate_wrapper/versions.py")"
  [[ -n "$value" ]] || { echo "error: cannot read $1 from migrate_wrapper/versions.py" >&2; exit 2; }
  printf '%s' "$value"
}

need_go() {
  command -v go >/dev/null 2>&1 || { echo "error: Go is needed to build $1; install it (https://go.dev/doc/install)" >&2; exit 2; }
  mkdir -p "$bin"
}

migrate_version="$(pin GOLANG_MIGRATE_VERSION)"
if [[ -x "$bin/migrate" ]] && [[ "$("$bin/migrate" -version 2>&1)" == "$migrate_version" ]]; then
  echo "golang-migrate $migrate_version already in .tools/bin"
else
  need_go golang-migrate
  echo "building golang-migrate $migrate_version into .tools/bin …"
  # A go-install build reports -version as "dev" unless stamped.
  GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -mod=mod" go install -tags 'postgres' -ldflags "-X main.Version=$migrate_version" \
    "github.com/golang-migrate/migrate/v4/cmd/migrate@v$migrate_version"
  "$bin/migrate" -version
fi

actionlint_version="$(pin ACTIONLINT_VERSION)"
# `actionlint -version` prints the version on its first line, then how it was built.
if [[ -x "$bin/actionlint" ]] && [[ "$("$bin/actionlint" -version 2>/dev/null | sed -n 1p)" == "$actionlint_version" ]]; then
  echo "actionlint $actionlint_version already in .tools/bin"
else
  need_go actionlint
  echo "building actionlint $actionlint_version into .tools/bin …"
  GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -mod=mod" go install \
    -ldflags "-X github.com/rhysd/actionlint.version=$actionlint_version" \
    "github.com/rhysd/actionlint/cmd/actionlint@v$actionlint_version"
  "$bin/actionlint" -version | sed -n 1p
fi
