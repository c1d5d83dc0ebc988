"""Checks that run before anything is applied or rolled back (and in dry runs): any failure stops the run."""

from __future__ import annotations

from typing import TYPE_CHECKING
from pathlib import Path

from migrate_wrapper.postgres import locks
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.events import CheckResult, Listener, RunInfo
from migrate_wrapper.errors import PreCheckFailed
from migrate_wrapper.model.migrations import Migration, too_big
from migrate_wrapper.model.plan import Status, repair_command
from migrate_wrapper.versions import GOLANG_MIGRATE_VERSION

if TYPE_CHECKING:
    import psycopg

    from migrate_wrapper.golang_migrate.runner import Binary


def _result(name: str, status: str, reason: str, *, hint: str | None = None, **data: object) -> CheckResult:
    return CheckResult(phase="pre", name=name, status=status, reason=reason, data=data or None, hint=hint)


def connectivity(conn: psycopg.Connection) -> CheckResult:
    # The server reports its version when the connection starts: no round trip (a pooler may not pass it on).
    version = conn.info.parameter_status("server_version") or conn.execute("show server_version").fetchone()[0]
    return _result("connectivity", "ok", f"PostgreSQL {version}", server_version=version)


def files(st: Status, direction: str, steps: list[Migration] | None = None) -> CheckResult:
    """The files golang-migrate will run must be unambiguous: named by the house rule, paired, in order."""
    if st.state.version is not None and st.current is None:
        return _result("files", "fail", st.drift[0].message)
    out_of_order = [d for d in st.drift if d.kind == "skipped"]
    if out_of_order:
        return _result("files", "fail", out_of_order[0].message)
    if not st.applied and not st.pending:
        return _result("files", "fail", f"no migration files in {st.folder}", hint="check --component and the checkout")
    moving = steps if steps is not None else st.pending if direction == "up" else st.applied
    missing = [m.id for m in moving if m.path(direction) is None]
    if missing:
        # golang-migrate would only move the version over it, leaving its changes in place (a down) or never made.
        return _result("files", "fail", f"{missing[0]} has no {direction} file: golang-migrate would move the version "
                       "past it without running anything", hint="add the file, or choose another target")
    warnings = []
    up_only = [m.id for m in moving if direction == "up" and m.down is None]
    if up_only:  # applied as golang-migrate would; rolling back past them is refused later
        warnings.append(f"{len(up_only)} up-only migration(s) ({', '.join(up_only[:3])}"
                        f"{', …' if len(up_only) > 3 else ''}): they cannot be rolled back")
    for migration in moving:
        path = migration.path(direction)
        if path is None:
            continue
        problem, empty = _read_check(path)
        if problem is not None:
            return _result("files", "fail", problem[0], hint=problem[1])
        if empty:
            warnings.append(f"{path.name} is empty: golang-migrate will move the version without changing anything")
    if warnings:
        return _result("files", "warn", warnings[0], problems=warnings + st.problems)
    if st.problems:
        return _result("files", "warn", st.problems[0], problems=st.problems)
    return _result("files", "ok", f"{len(st.applied)} applied, {len(st.pending)} pending")


def _read_check(path: Path) -> tuple[tuple[str, str] | None, bool]:
    """((problem, hint) or None, whether the file holds only white space), reading it in chunks."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    empty, offset = True, 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            if offset == 0 and chunk.startswith(b"\xef\xbb\xbf"):
                return (f"{path.name} starts with a byte-order mark, which PostgreSQL rejects",
                        "save the file as UTF-8 without BOM"), False
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return (f"{path.name} is not UTF-8 (byte {offset + exc.start})", "save the file as UTF-8"), False
            empty = empty and not chunk.strip()
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return (f"{path.name} is not UTF-8 (it ends inside a character)", "save the file as UTF-8"), False
    return None, empty


def dirty(st: Status, url_setting: str) -> CheckResult:
    if not st.state.dirty:
        return _result("dirty", "ok", "clean")
    from migrate_wrapper.model import evidence

    version = st.state.version
    why = "a migration did not finish"
    if st.unfinished_runs:
        # A wrapper killed mid-run (kill -9, a lost machine) leaves its ledger row at outcome "running".
        why = f"the audit ledger shows {st.unfinished_runs[-1]} never finished (killed?)"
    repair = repair_command(st.component)
    step = evidence.StepEvidence.from_json(st.last_step) if st.last_step else None
    proved = (evidence.COMMITTED, evidence.ROLLED_BACK, evidence.NOT_RUN)
    if step is not None and step.dirty_version == version and step.verdict in proved:
        # The run that left the mark proved what its step did (and which way it went): say exactly what to mark.
        clean = step.dirty_version if step.verdict == evidence.COMMITTED else step.before_version
        hint = (f"the audit ledger proves {step.id} ({step.direction}) {step.verdict.replace('_', ' ')}: {repair} "
                f"marks {clean if clean is not None else 'none'} clean (by hand: migrate -path {st.folder} -database "
                f"\"${url_setting}\" force {clean if clean is not None else -1})")
    else:
        hint = (f"{repair}: it marks the right version clean from the evidence (the audit ledger, the schema), or "
                "shows what it found and what to decide")
    return _result("dirty", "fail", f"database is dirty at version {version if version is not None else 'none'}: "
                   f"{why}", hint=hint)


def binary_version(binary: Binary) -> CheckResult:
    """A golang-migrate other than the pinned one (first on PATH, another MIGRATE_BIN) still runs; it is named."""
    if binary.version == GOLANG_MIGRATE_VERSION:
        return _result("golang_migrate", "ok", f"golang-migrate {binary.version} at {binary.path}")
    return _result("golang_migrate", "warn", f"golang-migrate {binary.version} at {binary.path}, not the pinned "
                   f"{GOLANG_MIGRATE_VERSION}", hint="make setup builds the pinned one into .tools/bin; MIGRATE_BIN "
                   "chooses which to run", version=binary.version, pinned=GOLANG_MIGRATE_VERSION)


def checksums(st: Status, environment: str) -> CheckResult:
    """Applied files edited since the ledger recorded them: a failure in production, a warning elsewhere."""
    if not st.edited:
        return _result("checksums", "ok", "applied files match the ledger's sha256 (where recorded)")
    status = "fail" if environment == "production" else "warn"
    return _result(
        "checksums", status, f"applied migration(s) edited since they ran: {', '.join(st.edited)}",
        hint="restore the files as applied and add a new migration for the change", edited=st.edited,
    )


def sql(migrations: list[Migration], direction: str) -> CheckResult:
    """Each file parses (pglast), and will run the way golang-migrate runs it (one implicit transaction)."""
    from migrate_wrapper.sql import sqlinfo

    warnings = []
    for migration in migrations:
        path = migration.path(direction)
        if path is None:
            continue
        if skipped := too_big(path):
            warnings.append(skipped)
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return _result("sql", "fail", f"{path.name} is not UTF-8 text")
        info = sqlinfo.analyse(text)
        if info.parse_error:
            return _result("sql", "fail", f"{path.name} does not parse: {info.parse_error}")
        if info.statements == 0:
            warnings.append(f"{path.name} is empty")
        if info.concurrently and info.statements > 1:
            return _result(
                "sql", "fail", f"{path.name}: CONCURRENTLY must be alone in its file "
                "(golang-migrate runs a file as one transaction)",
            )
        if info.transaction_control:
            warnings.append(f"{path.name} has its own BEGIN/COMMIT: a failure may leave it half-applied")
        elif info.commits_itself:
            warnings.append(f"{path.name} has {info.commits_itself}: a failure may leave it half-applied")
    if warnings:
        return _result("sql", "warn", "; ".join(warnings))
    return _result("sql", "ok", f"{len(migrations)} file(s) parse")


def lint(root, component, steps: list[Migration], direction: str) -> CheckResult:
    """Dry runs lint the files they would run and what the change adds (migrate-wrapper lint's rules, base rules
    against main when it exists); the rest of the history is not judged again."""
    from migrate_wrapper.errors import UsageError
    from migrate_wrapper.lint.gather import lint as run_lint

    running = {path.name for m in steps if (path := m.path(direction)) is not None}
    try:
        report = run_lint(root, [component], pending={component.name: running})
    except UsageError as exc:  # e.g. no .squawk.toml in this checkout: say so, but a dry run is not a lint run
        return _result("lint", "warn", f"lint not run: {exc}")
    first = next((f for f in report.sorted() if f.level == "error"), None)
    if first is not None:
        where = f"{first.file}:{first.line}: " if first.file and first.line else (f"{first.file}: " if first.file else "")
        return _result("lint", "fail", f"{report.errors} error(s); first: {where}{first.rule}: {first.message}",
                       hint=f"run: migrate-wrapper lint --component {component.name}")
    if report.warnings:
        return _result("lint", "warn", f"{report.warnings} warning(s) (migrate-wrapper lint shows them)")
    return _result("lint", "ok", f"{report.files} file(s) clean")


def migration_lock(conn: psycopg.Connection, url: DatabaseUrl, st: Status) -> CheckResult:
    """Fail at once when another backend holds golang-migrate's advisory lock (golang-migrate would wait forever)."""
    key = locks.advisory_lock_key(url, st.state.schema, st.state.table)
    row = conn.execute(
        f"""
        select a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'),
               extract(epoch from now() - coalesce(a.backend_start, now()))::int, a.state, a.backend_start::text
        from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where {locks.MIGRATE_LOCK_HELD} and l.pid <> pg_backend_pid()
        """,
        (key,),
    ).fetchone()
    if row is None:
        return _result("migration_lock", "ok", "golang-migrate's advisory lock is free", key=key)
    pid, app, client, seconds, state, backend_start = row
    return _result(
        "migration_lock",
        "fail",
        f"golang-migrate's lock is held by pid {pid} (application_name '{app or '-'}', client {client}, "
        f"connected {seconds}s ago, {state or 'unknown state'})",
        hint="another migration is running; wait for it, or stop that session if it is stale "
        f"(select pg_terminate_backend({pid}))",
        key=key,
        pid=pid,
        backend_start=backend_start,
    )


def blocking_locks(
    conn: psycopg.Connection,
    migrations: list[Migration],
    direction: str,
    *,
    long_transaction_seconds: float,
) -> CheckResult:
    """Sessions that would make a pending migration queue for its lock (and everyone behind it queue too)."""
    from migrate_wrapper.sql import sqlinfo

    # Only tables that other sessions hold locks on can block; a file that names none of them needs no parsing
    # (parsing a thousand pending files costs half a second).
    locked = {
        name.lower()
        for (name,) in conn.execute(
            """
            with held as (
                select distinct coalesce(i.indrelid, l.relation) as relid
                from pg_locks l left join pg_index i on i.indexrelid = l.relation
                where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
                  and l.database = (select oid from pg_database where datname = current_database())
            )
            -- the tables, and their indexes: DROP INDEX names only the index yet locks its table
            select c.relname from held h join pg_class c on c.oid = h.relid
            union
            select x.relname from held h join pg_index i on i.indrelid = h.relid join pg_class x on x.oid = i.indexrelid
            """
        ).fetchall()
    }
    if not locked:
        return _result("blocking_locks", "ok", "no other session holds a table lock")
    needed: dict[str, str] = {}
    unread: list[str] = []
    for migration in migrations:
        path = migration.path(direction)
        if path is None:
            continue
        if skipped := too_big(path):
            unread.append(skipped)
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        lowered = text.lower()
        if not any(name in lowered for name in locked):
            continue
        info = sqlinfo.analyse(text)
        for table, mode in info.tables.items():
            needed[table] = sqlinfo.stronger(needed.get(table, mode), mode)
    if not needed:
        if unread:  # which tables such a file needs is not known: say so rather than call it clear
            return _result("blocking_locks", "warn", f"{unread[0]}; the tables it locks are not checked")
        return _result("blocking_locks", "ok", "the pending migrations touch no existing table")
    rows = conn.execute(
        """
        with wanted as (
            select w.name, w.mode, coalesce(i.indrelid, c.oid) as relid
            from unnest(%s::text[], %s::text[]) as w(name, mode)
            join pg_class c on c.oid = to_regclass(w.name)
            left join pg_index i on i.indexrelid = c.oid
        )
        select distinct w.relid::regclass::text, w.mode, l.mode, l.pid,
               extract(epoch from now() - a.xact_start)::int, coalesce(a.state, ''),
               coalesce(a.query, ''), coalesce(a.application_name, '')
        from wanted w
        join pg_locks l on l.locktype = 'relation' and l.relation = w.relid and l.granted
        join pg_stat_activity a on a.pid = l.pid
        where l.pid <> pg_backend_pid()
        order by 5 desc nulls last
        """,
        ([_quoted(name) for name in needed], list(needed.values())),
    ).fetchall()
    for table, wanted_mode, held_mode, pid, age, state, query, app in rows:
        conflicts = held_mode in sqlinfo.CONFLICTS[wanted_mode]
        too_old = age is not None and age >= long_transaction_seconds
        if conflicts or too_old:
            why = f"holds {held_mode} (needs {wanted_mode})" if conflicts else f"in a transaction for {age}s"
            return _result(
                "blocking_locks",
                "fail",
                f"{table}: pid {pid} ({app or '-'}, {state}, transaction age {age if age is not None else '?'}s) "
                f"{why}: {sqlinfo.shown_query(query)}",  # another session's literals may be secrets
                hint="wait for that transaction to finish or end it, then retry",
                table=table,
                pid=pid,
            )
    if unread:
        return _result("blocking_locks", "warn", f"no conflicting locks on {len(needed)} table(s); {unread[0]}; "
                                                 "the tables it locks are not checked")
    return _result("blocking_locks", "ok", f"no conflicting locks on {len(needed)} table(s)")


def _quoted(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def run_all(run: RunInfo, listener: Listener, checks: list[CheckResult]) -> list[CheckResult]:
    """Report each result, then stop at the first failure."""
    from migrate_wrapper.checks import report

    failed = report(run, listener, "pre", checks)
    if failed:
        raise PreCheckFailed(failed.name, failed.reason, hint=failed.hint)
    return checks
