"""repair: settle a dirty database. golang-migrate marks a step dirty before running it; the wrapper decides from
evidence whether the failed step's changes are there or not, and only then marks the right version clean.

Evidence: the live schema compared with the schemas that the migrations produce at the dirty version and at its
neighbours (built by golang-migrate in scratch databases). When the schema cannot tell (a data-only step), an atomic
file that the audit ledger shows failing rolled back whole. Anything else — partial changes from a file with its
own COMMIT or a CONCURRENTLY index — is refused with the difference printed, for a person to settle by hand.
"""

from __future__ import annotations

import difflib

from migrate_wrapper import execute, ledger, sqlinfo
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import MigrationFailed, UsageError
from migrate_wrapper.events import Listener
from migrate_wrapper.migrations import Migration
from migrate_wrapper.scratch import ScratchServer
from migrate_wrapper.settings import Settings
from migrate_wrapper.target import Target
from migrate_wrapper.verbs import common
from migrate_wrapper.verbs.change import Options, _approve


class RepairRefused(MigrationFailed):
    """The evidence does not show which version is true; carries the schema difference for the operator."""

    def __init__(self, message: str, *, diff: str) -> None:
        super().__init__(message, hint="settle it by hand (see the runbook's dirty-state recovery); the diff is above",
                         diff=diff)


def repair(settings: Settings, target: Target, *, listener: Listener, options: Options, server: ScratchServer) -> str:
    from migrate_wrapper import schema_docs
    from migrate_wrapper.verbs.docs import build_schema

    binary = common.binary(settings)
    run = common.new_run("repair", target, settings, ledger.REPAIR, False)
    result: dict[str, str] = {}
    with common.tracked(run, listener, result):
        conn, reachable = common.connect(target, settings)
        try:
            st = common.read_status(conn, target)
            run.from_version = st.version_label
            listener.run_started(run, [])
            if not st.state.dirty:
                listener.note(run, "migration_noop", f"{target.component.name} is clean at {st.version_label}: "
                                                      "nothing to repair")
                result["outcome"] = "noop"
                return "noop"
            author, approver = _approve(settings, run, listener)
            pre.run_all(run, listener, [reachable, pre.migration_lock(conn, target.url, st)])

            files = target.files
            dirty = st.state.version
            candidates = _candidates(files.migrations, dirty)
            live = schema_docs.compare_text(schema_docs.describe(conn, exclude={(st.state.schema, st.state.table)}))
            built: dict[int | None, str] = {}
            for version in candidates:
                try:
                    built[version] = schema_docs.compare_text(
                        build_schema(binary, server, target.component, files, version, carry_from=target.url))
                except MigrationFailed:
                    continue  # a version the files cannot even reach (its step fails) is not the true one
            matches = [v for v in built if built[v] == live]
            clean = _decide(conn, target, files.migrations, dirty, matches)
            if clean is _UNDECIDED:
                nearest = _previous(files.migrations, dirty)
                expected = built.get(nearest) or next(iter(built.values()), "")
                diff = "".join(difflib.unified_diff(
                    expected.splitlines(keepends=True), live.splitlines(keepends=True),
                    fromfile=f"migrations up to {_label(files.migrations, nearest)}",
                    tofile=f"live {target.url.masked()}"))
                why = ("the live schema matches none of "
                       + ", ".join(_label(files.migrations, v) for v in built)
                       if not matches else "the schema cannot tell which of "
                       + ", ".join(_label(files.migrations, v) for v in matches) + " is true")
                raise RepairRefused(f"not repaired: {why}; the failed step left partial changes or the evidence "
                                    "is ambiguous", diff=diff)
            run.target = _label(files.migrations, clean)
            if not options.confirm(f"Mark {target.component.name} clean at {run.target} (now {st.version_label})?"):
                raise UsageError("nothing changed: the operator declined")

            ledger.begin(conn, run, author=author, approver=approver, migrate_version=binary.version)
            error = None
            try:
                forced = execute.migrate(binary, target, run, listener, ["force", str(clean if clean is not None else -1)],
                                         [], execute.url_params(settings))
                after = common.read_status(conn, target)
                if forced.failure is not None or after.state.dirty or after.state.version != clean:
                    raise MigrationFailed(
                        f"marking {run.target} clean failed"
                        + (f": {forced.failure.message}" if forced.failure else "")
                        + f"; database at {after.version_label}")
                listener.note(run, "migration_state", f"{target.component.name}: marked clean at {run.target}",
                              state=after.version_label)
            except BaseException as exc:
                error = exc
                raise
            finally:
                common.finish_audit(conn, run, listener, error)
            return "ok"
        finally:
            conn.close()


_UNDECIDED = object()


def _candidates(migrations: list[Migration], dirty: int | None) -> list[int | None]:
    """The dirty version and its neighbours: a failed up leaves (V, dirty), a failed down V→P leaves (P, dirty)."""
    versions: list[int | None] = [None] + [m.version for m in migrations]
    if dirty not in versions:
        raise UsageError(f"dirty version {dirty} is not among the migration files; repair needs its files")
    i = versions.index(dirty)
    return [v for v in versions[max(0, i - 1): i + 2]]


def _previous(migrations: list[Migration], version: int | None) -> int | None:
    before = [m.version for m in migrations if version is not None and m.version < version]
    return before[-1] if before else None


def _label(migrations: list[Migration], version: int | None) -> str:
    if version is None:
        return "none (no migration applied)"
    return next((m.id for m in migrations if m.version == version), str(version))


def _decide(conn, target: Target, migrations: list[Migration], dirty: int | None, matches: list[int | None]):
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return _UNDECIDED
    # The schema cannot tell (the step changes data only): the ledger says which step failed, and an atomic file
    # that failed rolled back whole.
    direction = _last_failed_direction(conn, target.component.name)
    if direction == "up":
        failed = next((m for m in migrations if m.version == dirty), None)
        path, clean = (failed.up if failed else None), _previous(migrations, dirty)
    elif direction == "down":
        later = [m for m in migrations if dirty is None or m.version > dirty]
        failed = later[0] if later else None
        path, clean = (failed.down if failed else None), (failed.version if failed else None)
    else:
        return _UNDECIDED
    if path is None or clean not in matches:
        return _UNDECIDED
    if not sqlinfo.analyse(path.read_text(encoding="utf-8", errors="replace")).atomic:
        return _UNDECIDED
    return clean


def _last_failed_direction(conn, component: str) -> str | None:
    exists = conn.execute("select to_regclass(%s) is not null", (f"{ledger.SCHEMA}.{ledger.TABLE}",)).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(
        f"select direction from {ledger.SCHEMA}.{ledger.TABLE} where component = %s and direction in ('up', 'down') "
        "order by started_at desc limit 1",
        (component,),
    ).fetchone()
    return row[0] if row else None
