"""Pinned versions of external tools: the one place they are written (scripts/dev/install-tools.sh reads them)."""

GOLANG_MIGRATE_VERSION = "4.19.1"
ACTIONLINT_VERSION = "1.7.12"  # checks .github/workflows in the tests and CI (`go install`, ~20 s cold)
