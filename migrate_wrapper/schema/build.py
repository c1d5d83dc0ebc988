"""A component's schema as its migrations produce it: golang-migrate builds it in a scratch database, the catalog is
read back. docs, validate-schema, smoke-test and repair compare against it."""

from __future__ import annotations

from migrate_wrapper.config.components import Component
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.model.migrations import MigrationSet
from migrate_wrapper.postgres import catalog, db, scratch
from migrate_wrapper.postgres.catalog import Schema
from migrate_wrapper.postgres.scratch import ScratchServer


def build_schema(binary: Binary, server: ScratchServer, component: Component, files: MigrationSet,
                 version: int | None = None, *, carry_from=None) -> Schema:
    """The schema `files` produce up to `version` (None: none applied), built by golang-migrate in a scratch database.

    `carry_from`: a target URL whose in-database parameters (migrations table, search_path) the build copies."""
    with scratch.database(server, f"{component.name}") as url:
        url = url.with_defaults(component.url_params())  # the component's migrations table, as on its targets
        if carry_from is not None:
            url = scratch.carry_params(url, carry_from)
        scratch.migrate_to(binary, files, url, version, what=component.name)
        conn = db.connect(url)
        try:
            state = db.read_version(conn, url, component)
            return catalog.describe(conn, exclude={(state.schema, state.table)})
        finally:
            conn.close()
