"""Pinned versions of external tools: the one place they are written (scripts/dev/install-tools.sh reads them)."""

GOLANG_MIGRATE_VERSION = "4.19.1"
