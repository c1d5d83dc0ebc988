"""What apply, rollback and status share: opening the target, reading its state, tracking a run's outcome."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.postgres import db, locks
from migrate_wrapper.model import plan
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import (
    outcome_of,
    MigrationFailed,
    PreCheckFailed,
    WrapperError,
)
from migrate_wrapper.events import CheckResult, Listener, RunInfo
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target

if TYPE_CHECKING:
    import psycopg

    from migrate_wrapper.golang_migrate.runner import Binary


VET_CACHE = Path(".local") / "cache" / "golang-migrate-vetted.json"  # under the project root


def binary(settings: Settings) -> Binary:
    from migrate_wrapper.golang_migrate import runner  # status never runs golang-migrate

    root = settings.project_root()
    return runner.vet(runner.locate(settings.migrate_bin, root), cache=root / VET_CACHE)


def connect(target: Target, settings: Settings) -> tuple[psycopg.Connection, CheckResult]:
    conn = connector(target, settings)()
    return conn, pre.connectivity(conn)


def connector(target: Target, settings: Settings) -> Callable[[], psycopg.Connection]:
    """Opens one more connection to the target, as the first one was opened."""
    return functools.partial(db.connect, target.url, timeout=settings.migration_connect_timeout_seconds)


def lock_key(target: Target, st: plan.Status) -> int:
    """golang-migrate's advisory lock key for this target's migrations table (the run lock derives from it)."""
    return locks.advisory_lock_key(target.url, st.state.schema, st.state.table)


def run_lock(conn: psycopg.Connection, target: Target, st: plan.Status) -> CheckResult:
    """Take the wrapper's run lock for the whole run (postgres/locks.py), as the first pre-check: a run in progress
    fails it at once. The caller reads the plan again once it holds the lock."""

    try:
        locks.acquire(conn, lock_key(target, st), running=st.unfinished_runs[-1] if st.unfinished_runs else None)
    except PreCheckFailed as exc:
        return CheckResult("pre", "migration_lock", "fail", exc.reason, hint=exc.hint)
    return CheckResult("pre", "run_lock", "ok", "no other migrate-wrapper run on this database; held for this run")


def open_change(conn: psycopg.Connection, target: Target, reachable: CheckResult,
                dry_run: bool) -> tuple[plan.Status, list[CheckResult]]:
    """What apply and rollback plan from, and the checks made opening it: unless a dry run, the run lock is taken
    and the state read again under it, so no other run can move the database between the plan and the run."""
    st = read_status(conn, target)
    opened = [reachable]
    if not dry_run:
        opened.append(run_lock(conn, target, st))
        if opened[-1].status == "ok":
            st = read_status(conn, target)
    return st, opened


def status_once(target: Target, settings: Settings, *, look_for_runs: bool = False) -> plan.Status:
    """Connect, read the target's state, disconnect: for verbs that only look. `look_for_runs` also says whether a
    run is in progress, so a dirty mark that is a running step is not taken for a failure."""
    conn, _ = connect(target, settings)
    try:
        st = read_status(conn, target)
        if look_for_runs:
            st.running = run_in_progress(conn, target, st)
        return st
    finally:
        conn.close()


def run_in_progress(conn: psycopg.Connection, target: Target, st: plan.Status) -> str | None:

    holder = locks.holder(conn, lock_key(target, st))
    if holder is not None:
        run = f" — {st.unfinished_runs[-1]}" if st.unfinished_runs else ""
        return f"a migrate-wrapper run is in progress ({holder}){run}"
    other = pre.migration_lock(conn, target.url, st)
    if other.status == "fail":
        from migrate_wrapper.postgres import ledger
        from migrate_wrapper.model.evidence import StepEvidence

        found = ledger.last_evidence(conn, target.component.name)
        step = StepEvidence.from_json(found[1]) if found and found[1] else None
        holder = ((other.data or {}).get("pid"), (other.data or {}).get("backend_start"))
        if step is not None and (step.pid, step.backend_start) == holder:
            return None  # the backend of a killed run, finishing its step: repair is what settles it
        return f"golang-migrate is running outside this wrapper: {other.reason}"
    return None


def read_status(conn: psycopg.Connection, target: Target) -> plan.Status:
    from migrate_wrapper.postgres import ledger

    state = db.read_version(conn, target.url, target.component)
    history = ledger.history(conn, target.component.name)
    return plan.status(target.component.name, target.url.masked(), target.files, state, history=history)


class StateReader:
    """Reads the target's state on the wrapper's own connection, reconnecting once when the server went away
    (a restart or failover mid-run): a lost connection must end in a reported state, never in a traceback."""

    def __init__(self, target: Target, settings: Settings, conn: psycopg.Connection, *,
                 run_lock_key: int | None = None) -> None:
        self.target = target
        self.settings = settings
        self._conn = conn
        self.run_lock_key = run_lock_key  # the run lock the first connection held: a new one must take it again

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn.closed or self._conn.broken:
            self._reconnect()
        return self._conn

    RECONNECT_SECONDS = 15.0  # long enough for a restart or a failover to finish

    def _reconnect(self) -> None:
        self._conn.close()
        deadline = time.monotonic() + self.RECONNECT_SECONDS
        while True:
            try:
                self._conn = db.connect(self.target.url, timeout=self.settings.migration_connect_timeout_seconds)
                self._take_run_lock_again()
                return
            except PreCheckFailed as exc:
                if time.monotonic() >= deadline:
                    raise MigrationFailed(
                        f"lost the connection to {self.target.url.masked()} and could not reconnect "
                        f"({exc.reason}); the database's state is unknown",
                        hint="run status once the server is back",
                    ) from None
                time.sleep(0.5)

    def _take_run_lock_again(self) -> None:
        if self.run_lock_key is None:
            return
        try:
            locks.acquire(self._conn, self.run_lock_key, running=None)
        except PreCheckFailed:
            self._conn.close()  # not this run's to read any more: another run moves the database now
            raise MigrationFailed(
                f"lost the connection to {self.target.url.masked()}, and another run took the run lock meanwhile; "
                "this run stops here and the database's state is unknown",
                hint="run status once that run has finished",
            ) from None

    def __call__(self) -> plan.Status:
        import psycopg

        try:
            return read_status(self.conn, self.target)
        except psycopg.OperationalError:
            self._reconnect()
            return read_status(self._conn, self.target)

    def without_reconnecting(self) -> plan.Status | None:
        """The state, read on the connection there is; None when it is gone (a reconnect was already tried)."""
        import psycopg

        if self._conn.closed or self._conn.broken:
            return None
        try:
            return read_status(self._conn, self.target)
        except psycopg.Error:
            return None

    def close(self) -> None:
        self._conn.close()


def finish_audit(conn: psycopg.Connection, run: RunInfo, listener: Listener, error: BaseException | None) -> None:
    """Complete the run's audit row; failing to write it is noted, and never hides the run's own outcome."""
    from migrate_wrapper.postgres import ledger

    message = str(error) if isinstance(error, WrapperError) else (type(error).__name__ if error else None)
    try:
        ledger.finish(conn, run, outcome_of(error), message)
    except Exception as exc:  # noqa: BLE001 - the migration's own error (or success) is what the caller reports
        listener.note(run, "audit_write_failed", f"could not complete the audit record: {type(exc).__name__}")


def reached(st: plan.Status) -> tuple[str | None, bool]:
    """RunInfo.reached from a status just read: the version's id (its number if no file has it) and the dirty flag."""
    version = st.current.id if st.current else None if st.state.version is None else str(st.state.version)
    return version, st.state.dirty
