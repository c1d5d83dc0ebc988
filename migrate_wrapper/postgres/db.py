"""Read-only access to the target database with psycopg (imported here only: it costs ~300 ms to import).

Status and dry runs read golang-migrate's table directly, because connecting golang-migrate itself creates that
table and takes its advisory lock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from migrate_wrapper.config.components import Component
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.model.plan import VersionState
from migrate_wrapper.errors import PreCheckFailed, UsageError, printable

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "db-migrate-cli"
DEFAULT_CONNECT_TIMEOUT = 5.0


def connect(url: DatabaseUrl, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> psycopg.Connection:
    import psycopg

    kwargs = url.psycopg_kwargs(connect_timeout=timeout)
    kwargs.setdefault("application_name", APPLICATION_NAME)
    try:
        return psycopg.connect(autocommit=True, **kwargs)
    except psycopg.Error as exc:
        reason = url.mask_text(_first_line(str(exc)))
        raise PreCheckFailed(
            "connectivity",
            f"cannot connect to {url.masked()}: {reason}",
            hint=f"check {url.setting}, the network and the credentials",
        ) from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else "unknown error"


def migrations_table(url: DatabaseUrl, component: Component) -> tuple[str | None, str]:
    """(schema or None for current_schema(), table) exactly as golang-migrate's postgres driver resolves them."""
    table = url.param("x-migrations-table") or component.migrations_table
    if (url.param("x-migrations-table-quoted") or "").lower() in ("1", "t", "true"):
        parts = re.findall(r'"(.*?)"', table)
        if len(parts) == 2:
            return parts[0], parts[1]
        if parts:
            return None, parts[-1]
    return None, table


def read_version(conn: psycopg.Connection, url: DatabaseUrl, component: Component) -> VersionState:
    from psycopg import sql

    schema, table = migrations_table(url, component)
    if schema is None:
        schema = conn.execute("select current_schema()").fetchone()[0]
        if schema is None:  # golang-migrate keeps its table in current_schema(): with none it cannot even start
            path = conn.execute("show search_path").fetchone()[0]
            raise UsageError(f"{url.setting}: no schema on its search_path ({printable(path, 80)}) exists, so "
                             "golang-migrate has nowhere to keep its table",
                             hint="fix search_path in the URL, or create the schema")
    exists = conn.execute(
        "select 1 from pg_catalog.pg_tables where schemaname = %s and tablename = %s", (schema, table)
    ).fetchone()
    if not exists:
        return VersionState(None, False, False, schema, table)
    row = conn.execute(
        sql.SQL("select version, dirty from {}.{} limit 1").format(sql.Identifier(schema), sql.Identifier(table))
    ).fetchone()
    if row is None or row[0] is None or row[0] < 0:
        # golang-migrate writes -1 (NilVersion) only transiently; treat it as "nothing applied".
        return VersionState(None, bool(row and row[1]), True, schema, table)
    return VersionState(int(row[0]), bool(row[1]), True, schema, table)
