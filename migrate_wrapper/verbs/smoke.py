"""smoke-test: is the database recoverable after an apply or a rollback? Read-only; every check is reported.

1. connectivity; 2. not dirty; 3. the version equals what the last successful run in the audit ledger left (when
there is a ledger); 4. the live schema equals what the migrations up to that version produce (built in a scratch
database; compared as postgres/catalog.py describes them); 5. the component's smoke queries `db/smoke/<component>.sql`
succeed, each in its own READ ONLY transaction. Any failure: exit 1 naming each failed check.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.postgres import db, ledger
from migrate_wrapper.postgres import catalog
from migrate_wrapper.schema import markdown
from migrate_wrapper.errors import PreCheckFailed, UsageError, WrapperError
from migrate_wrapper.events import CheckResult, Listener
from migrate_wrapper.model.migrations import Migration, MigrationSet
from migrate_wrapper.model.plan import Status
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.postgres.scratch import ScratchServer
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT_MS = 30_000  # a smoke query is a probe: it must never load the server
LOCK_TIMEOUT_MS = 2_000
SINCE = "-- since:"


class SmokeFailed(WrapperError):
    """One or more smoke checks failed; `diff` holds the schema difference, if that was one of them."""


@dataclass(frozen=True)
class SmokeQuery:
    line: int  # where the statement starts in the file (1-based)
    text: str
    since: Migration | None  # runs only at this migration or later


def smoke(settings: Settings, target: Target, *, binary: Binary, server: ScratchServer, listener: Listener) -> list[
        CheckResult]:
    """All checks, in order; raises SmokeFailed naming every failed one."""
    queries_file = settings.project_root() / target.component.smoke_file
    queries = parse_queries(queries_file, target.files) if queries_file.exists() else None
    ctx = RunContext.start("smoke-test", settings, target, listener)
    run = ctx.run
    checks: list[CheckResult] = []
    diff = ""

    def record(name: str, status: str, reason: str, **data: object) -> None:
        check = CheckResult("smoke", name, status, reason, data or None)
        checks.append(check)
        listener.check(run, check)

    with ctx.tracked():
        listener.checks_started(run, "smoke")
        try:
            conn = db.connect(target.url, timeout=settings.migration_connect_timeout_seconds)
        except PreCheckFailed as exc:
            record("connectivity", "fail", exc.reason)
            conn = None
        if conn is not None:
            try:
                record("connectivity", "ok", f"connected to {target.url.masked()}")
                st = session.read_status(conn, target)
                run.from_version = run.target = st.current.id if st.current else None
                record("dirty", "fail" if st.state.dirty else "ok",
                       f"version {st.version_label}" + (": a migration failed half-way" if st.state.dirty else ""))
                record(*_ledger_check(conn, target.component.name, st))
                status, reason, diff = _schema_check(conn, target, st, binary, server)
                record("schema", status, reason)
                record(*_queries_check(conn, queries, queries_file, st, settings.project_root()))
            finally:
                conn.close()
        listener.checks_finished(run, "smoke", checks)
        failed = [c for c in checks if c.status == "fail"]
        if failed:
            raise SmokeFailed(
                f"smoke test of {target.component.name} failed: " + "; ".join(f"{c.name}: {c.reason}" for c in failed),
                diff=diff,
            )
    return checks


def _version_of(migration_id: str | None) -> int | None:
    return int(migration_id.split("_", 1)[0]) if migration_id else None


def _ledger_check(conn: psycopg.Connection, component: str, st: Status) -> tuple[str, str, str]:
    table = f"{ledger.SCHEMA}.{ledger.TABLE}"
    if not conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]:
        return "ledger", "ok", "no audit ledger in this database yet: nothing to compare"
    row = conn.execute(
        f"""select run_id, direction, to_version, finished_at, started_at from {table}
            where component = %s and outcome = 'ok' order by finished_at desc nulls last, started_at desc limit 1""",
        (component,),
    ).fetchone()
    if row is None:
        return "ledger", "ok", f"no successful run of {component} in the audit ledger yet"
    run_id, direction, to_version, finished_at, started_at = row
    verb = "apply" if direction == "up" else "rollback"
    left = to_version or "none"
    when = finished_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if finished_at else "?"
    if _version_of(to_version) == st.state.version:
        return "ledger", "ok", f"at {left}, as the last successful run left it ({verb} {run_id[:12]}, {when})"
    later = conn.execute(
        f"""select outcome, count(*) from {table} where component = %s and started_at > %s and outcome <> 'ok'
            group by outcome order by outcome""",
        (component, started_at),
    ).fetchall()
    after = "; later runs: " + ", ".join(f"{n} {outcome}" for outcome, n in later) if later else ""
    return ("ledger", "fail",
            f"at {st.version_label}, but the last successful run ({verb} {run_id[:12]}, {when}) left {left}{after}")


def _schema_check(conn: psycopg.Connection, target: Target, st: Status, binary: Binary,
                  server: ScratchServer) -> tuple[str, str, str]:
    from migrate_wrapper.schema.build import build_schema

    version = st.state.version
    if version is not None and st.current is None:
        return "fail", f"version {version} is not among the migration files: the expected schema is unknown", ""
    upto = st.current.id if st.current else "none"
    live = catalog.describe(conn, exclude={(st.state.schema, st.state.table)})
    expected = build_schema(binary, server, target.component, target.files, version, carry_from=target.url)
    want, have = markdown.compare_text(expected), markdown.compare_text(live)
    if want == have:
        return "ok", f"live schema equals the migrations up to {upto}", ""
    diff = "".join(difflib.unified_diff(
        want.splitlines(keepends=True), have.splitlines(keepends=True),
        fromfile=f"migrations up to {upto}", tofile=f"live {target.url.masked()}",
    ))
    changed = sum(1 for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---")))
    return "fail", f"live schema differs from the migrations up to {upto} ({changed} lines; diff on stdout)", diff


def _queries_check(conn: psycopg.Connection, queries: list[SmokeQuery] | None, path: Path, st: Status,
                   root: Path) -> tuple[str, str, str]:
    import psycopg

    where = path.relative_to(root) if path.is_relative_to(root) else path
    if queries is None:
        return "queries", "warn", f"no smoke queries: {where} does not exist"
    version = st.state.version
    ran = skipped = 0
    failures: list[str] = []
    waiting: set[str] = set()
    for query in queries:
        if query.since is not None and (version is None or query.since.version > version):
            skipped += 1
            waiting.add(query.since.id)
            continue
        ran += 1
        try:
            with conn.transaction():
                conn.execute("set transaction read only")
                conn.execute(
                    "select pg_catalog.set_config('statement_timeout', %s, true),"
                    " pg_catalog.set_config('lock_timeout', %s, true)",
                    (f"{STATEMENT_TIMEOUT_MS}ms", f"{LOCK_TIMEOUT_MS}ms"),
                )
                cursor = conn.execute(query.text)
                if cursor.description is not None:
                    cursor.fetchall()  # every row, so a failure in the middle of the result counts too
        except psycopg.Error as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            failures.append(f"{where}:{query.line}: {text[:300]}")
    skip = f", {skipped} skipped (written for later versions, from {min(waiting)})" if skipped else ""
    if failures:
        return "queries", "fail", f"{len(failures)} of {ran} failed: " + "; ".join(failures) + skip
    return "queries", "ok", f"{ran} read-only queries ok{skip}"


def parse_queries(path: Path, files: MigrationSet) -> list[SmokeQuery]:
    """The file's statements, each with the `-- since: <migration id>` found in the comments just before it."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    text = path.read_text(encoding="utf-8")
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        raise UsageError(f"{path}: not valid SQL: {exc}") from None
    # pglast gives character offsets into the text; line numbers come from the same text.
    result: list[SmokeQuery] = []
    previous_end = 0
    for raw in statements:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        since_id = None
        for line in text[previous_end:start].splitlines():
            if line.strip().lower().startswith(SINCE):
                since_id = line.strip()[len(SINCE):].strip()
        since = None
        if since_id is not None:
            since = files.find(since_id) if "_" in since_id else None
            if since is None or since.id != since_id:
                line_no = text.count("\n", 0, start) + 1
                raise UsageError(f"{path}:{line_no}: `since: {since_id}` names no migration in {files.folder}",
                                 hint="write the id as status prints it"
                                 + (f", e.g. {files.migrations[-1].id}" if files.migrations else ""))
        result.append(SmokeQuery(text.count("\n", 0, start) + 1, text[start:end].strip(), since))
        previous_end = end
    return result

