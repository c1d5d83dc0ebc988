"""migrate-wrapper: safe, auditable PostgreSQL migrations around the real golang-migrate binary."""

__version__ = "0.1.0"
