"""The rehearsal that measure-window and `apply --dry-run --rehearse` share: the pending migrations run for real, on a
scratch clone of the target, to time them and to catch errors only a real server sees.

The clone is the target's schema (`pg_dump --schema-only`, without the audit ledger) plus golang-migrate's version
row, in a scratch database; the target itself is only read. On the clone: apply the pending migrations, roll them
back, apply them again, each direction by golang-migrate with every step timed. A direction that takes longer than
MIGRATION_WINDOW_SECONDS is stopped there and the rehearsal ends: exit 5. The clone has no rows, so the times are a
floor: what locks, DDL and catalog work cost, not what rewriting a big table costs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from migrate_wrapper.postgres import db, ledger, scratch
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.errors import MigrationFailed, PreCheckFailed, UsageError, WindowExceeded, WrapperError
from migrate_wrapper.events import Listener, RunInfo
from migrate_wrapper.model.plan import Status
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.postgres.scratch import ScratchServer
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target

DUMP_TIMEOUT_SECONDS = 300
# pg_dump options: the schema only, and nothing that ties it to the target's roles, tablespaces or replication.
_DUMP_OPTIONS = ("--schema-only", "--no-owner", "--no-privileges", "--no-tablespaces", "--no-publications",
                 "--no-subscriptions", "--no-security-labels", f"--exclude-schema={ledger.SCHEMA}")


@dataclass
class Phase:
    name: str  # apply | rollback | reapply
    direction: str  # up | down
    wall_ms: float = 0.0  # golang-migrate's whole run: start-up, connection, lock and every step
    steps: list[dict] = field(default_factory=list)  # {"id", "duration_ms"} as golang-migrate timed each
    exceeded: bool = False
    error: str | None = None


@dataclass
class Rehearsal:
    component: str
    database: str  # the target, masked
    scratch_server: str  # masked
    window_seconds: int
    from_version: str | None
    to_version: str | None
    pending: list[str]
    phases: list[Phase] = field(default_factory=list)
    run_id: str | None = None
    measured_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def outcome(self) -> str:
        if not self.pending:
            return "nothing_pending"
        if any(p.exceeded for p in self.phases):
            return "exceeded"
        if any(p.error for p in self.phases):
            return "failed"
        return "ok"

    @property
    def slowest_ms(self) -> float:
        return max((p.wall_ms for p in self.phases), default=0.0)

    def document(self) -> dict:
        return {**asdict(self), "outcome": self.outcome, "slowest_ms": round(self.slowest_ms, 3)}

    def error(self) -> WrapperError | None:
        """What the rehearsal means for the run: WindowExceeded (exit 5), MigrationFailed (exit 1) or nothing."""
        for phase in self.phases:
            if phase.exceeded:
                return WindowExceeded(
                    f"rehearsal of {self.component}: {phase.name} took longer than the time window of "
                    f"{self.window_seconds}s ({_seconds(phase.wall_ms)} when stopped)"
                )
            if phase.error:
                return MigrationFailed(f"rehearsal of {self.component} ({phase.name}): {phase.error}")
        return None

    def summary(self) -> str:
        lines = [f"rehearsal of {self.component} @ {self.database}"]
        if not self.pending:
            lines.append(f"nothing pending at {self.from_version or 'none'}: nothing to rehearse")
            return "\n".join(lines) + "\n"
        lines += [
            f"rehearsed {len(self.pending)} pending migration(s), {self.from_version or 'none'} → {self.to_version}, "
            f"on a scratch clone ({self.scratch_server})",
            f"window: {self.window_seconds}s for each apply or rollback",
        ]
        width = max((len(s["id"]) for p in self.phases for s in p.steps), default=0)
        for phase in self.phases:
            state = "EXCEEDED" if phase.exceeded else "FAILED" if phase.error else "ok"
            lines.append(f"  {phase.name:<9} {phase.direction:<4} {len(phase.steps)} step(s) in "
                         f"{_seconds(phase.wall_ms)}  {state}")
            for step in phase.steps:
                lines.append(f"    {step['id']:<{width}}  {_ms(step['duration_ms']):>9}")
            if phase.error:
                lines.append(f"    error: {phase.error}")
        verdict = {"ok": "within the window", "exceeded": "EXCEEDS the window", "failed": "a step FAILED"}
        lines.append(f"result: {verdict[self.outcome]} (slowest direction {_seconds(self.slowest_ms)} of "
                     f"{self.window_seconds}s; an empty clone: rows make it slower)")
        return "\n".join(lines) + "\n"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f}s"


def _ms(ms: float) -> str:
    return f"{ms:.1f}ms" if ms < 1000 else _seconds(ms)


def rehearse(
    settings: Settings,
    binary: Binary,
    target: Target,
    st: Status,
    *,
    server: ScratchServer,
    listener: Listener,
    run: RunInfo,
) -> Rehearsal:
    """Apply, roll back and re-apply `st.pending` on a scratch clone of the target; never raises for what the
    migrations do (that is in the result: see `Rehearsal.error()`), only when the clone cannot be made."""
    pending = st.pending
    rehearsal = Rehearsal(
        component=target.component.name, database=target.url.masked(), scratch_server=server.url.masked(),
        window_seconds=settings.migration_window_seconds, from_version=st.current.id if st.current else None,
        to_version=pending[-1].id if pending else None, pending=[m.id for m in pending], run_id=run.run_id,
    )
    if not pending:
        return rehearsal
    dump = dump_schema(target.url, settings)
    window_ms = settings.migration_window_seconds * 1000.0
    start = st.state.version
    plan = [("apply", "up", ["goto", str(pending[-1].version)]),
            ("rollback", "down", ["down", "-all"] if start is None else ["goto", str(start)]),
            ("reapply", "up", ["goto", str(pending[-1].version)])]
    with scratch.database(server, f"rehearse_{target.component.name}") as url:
        url = scratch.carry_params(url, target.url)
        restore(url, dump, st)
        for name, direction, command in plan:
            result = scratch.run_migrate(binary, target.files, url, command,
                                         deadline=time.monotonic() + settings.migration_window_seconds)
            phase = Phase(name, direction, round(result.wall_ms, 3),
                          [{"id": _id(target, s.version, s.title), "duration_ms": round(s.duration_ms, 3)}
                           for s in result.result.steps])
            phase.exceeded = result.result.interrupted or result.wall_ms > window_ms
            if not phase.exceeded and result.result.failure is not None:
                phase.error = result.failure_text()
            rehearsal.phases.append(phase)
            listener.note(
                run, "rehearsal_phase",
                f"rehearsal {name}: {len(phase.steps)} step(s) in {_seconds(phase.wall_ms)}"
                + (" (window exceeded)" if phase.exceeded else f" (failed: {phase.error})" if phase.error else ""),
                phase=name, direction=direction, duration_ms=phase.wall_ms, steps=[s["id"] for s in phase.steps],
                exceeded=phase.exceeded,
            )
            if phase.exceeded or phase.error:
                break
    return rehearsal


def _id(target: Target, version: int, title: str) -> str:
    migration = target.files.by_version(version)
    return migration.id if migration else f"{version}_{title}"


# -- the clone -------------------------------------------------------------------------------------------------------
def pg_dump_path() -> str:
    for candidate in (shutil.which("pg_dump"), os.path.join(os.environ.get("PG_BIN", ""), "pg_dump"),
                      "/usr/lib/postgresql/15/bin/pg_dump"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise UsageError("pg_dump not found (needed to clone the target's schema)",
                     hint="install the PostgreSQL client of the server's major version, or set PG_BIN")


def dump_schema(url: DatabaseUrl, settings: Settings) -> str:
    """The target's schema as SQL; reads only. The password goes through the environment, never argv."""
    from psycopg.conninfo import make_conninfo

    kwargs = url.psycopg_kwargs(connect_timeout=settings.migration_connect_timeout_seconds)
    password = kwargs.pop("password", None)
    if kwargs.get("sslpassword"):  # libpq has no variable for it: it would have to go on pg_dump's command line
        raise UsageError(f"{url.setting} has sslpassword, which pg_dump could only get on its command line",
                         hint="use an unencrypted client key (mode 0600) for the schema clone")
    kwargs.setdefault("application_name", db.APPLICATION_NAME)
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE")}
    if password:
        env["PGPASSWORD"] = password
    argv = [pg_dump_path(), *_DUMP_OPTIONS, f"--lock-wait-timeout={settings.migration_lock_timeout_ms}",
            "--dbname", make_conninfo(**kwargs)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=DUMP_TIMEOUT_SECONDS,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PreCheckFailed("schema_dump", f"pg_dump of {url.masked()} took longer than {DUMP_TIMEOUT_SECONDS}s") \
            from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        reason = url.mask_text(lines[0] if lines else f"exit {proc.returncode}")
        raise PreCheckFailed("schema_dump", f"pg_dump of {url.masked()} failed: {reason}",
                             hint="pg_dump must be the server's major version or newer")
    # pg_dump >= 15.14 brackets the script with \restrict lines carrying a random key; they are psql commands.
    return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def restore(url: DatabaseUrl, dump: str, st: Status) -> None:
    """Load the schema into the scratch database and give it the target's version row."""
    import psycopg
    from psycopg import sql

    conn = db.connect(url)
    try:
        with conn.transaction():
            if dump.strip():
                conn.execute(dump)  # no parameters: one simple query, many statements
            if st.state.table_exists and st.state.version is not None:
                conn.execute(
                    sql.SQL("insert into {}.{} (version, dirty) values (%s, false)").format(
                        sql.Identifier(st.state.schema), sql.Identifier(st.state.table)),
                    (st.state.version,),
                )
    except psycopg.Error as exc:
        reason = url.mask_text(" ".join(str(exc).split())[:300])
        raise PreCheckFailed("schema_clone", f"the target's schema does not load into a scratch database: {reason}",
                             hint="the scratch server needs the extensions the target uses") from None
    finally:
        conn.close()
