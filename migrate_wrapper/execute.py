"""Carry out a change (the steps of an apply or a rollback) with golang-migrate, lock-safely and within the window.

- golang-migrate gets `lock_timeout` and `x-statement-timeout` in its URL, so DDL never queues for long behind a
  transaction (and everyone else never queues behind the DDL).
- A step that hit the lock timeout rolled back whole when its file is one implicit transaction, but golang-migrate
  leaves the version dirty: the previous version is marked clean again and the step retried with growing waits.
- At the deadline the Stopper stops golang-migrate; an interrupted atomic step is likewise marked clean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from migrate_wrapper import db, runner
from migrate_wrapper.errors import Interrupted, MigrationFailed, PreCheckFailed, WindowExceeded, WrapperError
from migrate_wrapper.events import Listener, RunInfo, StepInfo
from migrate_wrapper.migrations import Migration
from migrate_wrapper.runner import Binary, Event, StepFinished, StepStarted
from migrate_wrapper.settings import Settings
from migrate_wrapper.target import Target
from migrate_wrapper.window import Stopper

if TYPE_CHECKING:
    import psycopg

    from migrate_wrapper.verbs.common import StateReader


@dataclass(frozen=True)
class Change:
    direction: str  # up | down
    steps: list[Migration]  # in the order golang-migrate runs them
    end_version: int | None  # where the database ends when every step succeeded


def url_params(settings: Settings) -> dict[str, str]:
    """Added to golang-migrate's URL unless the operator set them."""
    statement_ms = settings.migration_statement_timeout_ms or settings.migration_window_seconds * 1000
    return {
        "application_name": db.APPLICATION_NAME,
        "connect_timeout": "10",
        "lock_timeout": str(settings.migration_lock_timeout_ms),
        "x-statement-timeout": str(statement_ms),
    }


def migrate(
    binary: Binary,
    target: Target,
    run: RunInfo,
    listener: Listener,
    command: list[str],
    steps: list[Migration],
    params: dict[str, str],
    *,
    deadline: float | None = None,
    stopper: Stopper | None = None,
) -> runner.RunResult:
    """One golang-migrate call; `steps` (in its order) names each step as it starts and finishes."""
    by_version = {m.version: m for m in steps}
    started: dict[tuple[int, str], StepInfo] = {}

    def step(event: StepStarted | StepFinished, duration: float | None = None) -> StepInfo:
        known = started.get((event.version, event.direction))  # the file is hashed once, when the step starts
        if known is None:
            migration = by_version.get(event.version)
            known = StepInfo(
                id=migration.id if migration else f"{event.version}_{event.title}",
                version=event.version,
                direction=event.direction,
                sha256=migration.sha256(event.direction) if migration else None,
            )
            started[(event.version, event.direction)] = known
        return known if duration is None else replace(known, duration_ms=duration)

    def on_event(event: Event) -> None:
        if isinstance(event, StepStarted):
            listener.step_started(run, step(event))
        elif isinstance(event, StepFinished):
            info = step(event, event.duration_ms)
            run.steps.append(info)
            listener.step_finished(run, info)

    argv = runner.build_argv(
        binary.path, source=target.files.folder, database_url=target.url.for_migrate(params), command=command
    )
    return runner.run(
        argv,
        mask=target.url.mask_text,
        on_event=on_event,
        on_output=lambda line: listener.output(run, line),
        deadline=deadline,
        on_deadline=stopper.deadline if stopper else None,
        on_start=stopper.attach if stopper else lambda proc: None,
    )


def carry_out(
    settings: Settings,
    binary: Binary,
    target: Target,
    run: RunInfo,
    listener: Listener,
    read_state: StateReader,
    change: Change,
) -> None:
    """Run every step of `change`; raises MigrationFailed, WindowExceeded, Interrupted or PreCheckFailed with the
    state reached. golang-migrate is told the target (`goto V`, or `down -all`), never a step count, so a run that
    waited for another's lock can never step past its own plan."""
    from migrate_wrapper.checks import pre

    params = url_params(settings)
    deadline = run.started + settings.migration_window_seconds
    first = read_state()
    lock_key = pre.advisory_lock_key(target.url, first.state.schema, first.state.table)
    command = ["down", "-all"] if change.end_version is None else ["goto", str(change.end_version)]
    stopper = Stopper(settings.migration_window_grace_seconds, lambda: _cancel_lock_holder(target, lock_key))
    remaining = list(change.steps)
    attempt = 1
    with stopper.handling_signals():
        while remaining and not stopper.fired:
            result = migrate(binary, target, run, listener, command, remaining, params, deadline=deadline,
                             stopper=stopper)
            stopper.join()
            failed = remaining[len(result.steps)] if len(result.steps) < len(remaining) else None
            remaining = remaining[len(result.steps):]
            if stopper.fired:
                break
            if result.failure is None:
                if remaining:
                    raise _moved_by_someone_else(run, read_state(), remaining)
                return
            if result.failure.kind == "migration_lock":
                holder = pre.migration_lock(read_state.conn, target.url, read_state())
                raise PreCheckFailed(
                    "migration_lock",
                    holder.reason if holder.status == "fail" else
                    f"{result.failure.message} (gave up after {settings.migration_lock_timeout_ms} ms)",
                    hint="another migration is running; retry when it has finished",
                )
            if "due to user request" in result.failure.message:
                # Nobody here cancelled it: golang-migrate's x-statement-timeout is a client-side cancel.
                result.failure = replace(result.failure, message=(
                    f"exceeded the statement timeout of {params['x-statement-timeout']} ms "
                    "(MIGRATION_STATEMENT_TIMEOUT_MS)"))
            if not (result.failure.kind == "lock_timeout" and failed is not None
                    and _restorable(target, change, failed, read_state)):
                after = read_state()
                kind = result.failure.kind
                where = f"{failed.id} failed" if failed and kind in ("migration_failed", "lock_timeout") else \
                    "golang-migrate failed"
                line = f" (line {result.failure.sql_line})" if result.failure.sql_line else ""
                raise MigrationFailed(
                    f"{where}: {result.failure.message}{line}; database now at version {after.version_label}",
                    version=failed.id if failed else None,
                    state=after.version_label,
                )
            clean = _restore(binary, target, run, listener, change, failed, read_state, params)
            blocker = _blockers(read_state.conn, failed, change.direction)
            if attempt >= settings.migration_lock_retries:
                raise MigrationFailed(
                    f"{failed.id} could not take its lock after {attempt} tries ({result.failure.message}); "
                    f"blocked by {blocker}; database left clean at {clean}",
                    version=failed.id,
                    state=clean,
                )
            wait = settings.migration_lock_retry_wait_seconds * 2 ** (attempt - 1)
            listener.note(
                run, "lock_retry", f"{failed.id}: lock timeout (blocked by {blocker}); retry {attempt + 1} of "
                f"{settings.migration_lock_retries} in {wait:g}s", version=failed.id, attempt=attempt,
                blocker=blocker,
            )
            if time.monotonic() + wait >= deadline:
                raise WindowExceeded(
                    f"time window of {settings.migration_window_seconds}s would be exceeded waiting to retry "
                    f"{failed.id}; database left clean at {clean}"
                )
            time.sleep(wait)
            attempt += 1
    if stopper.fired:
        raise _stopped(settings, binary, target, run, listener, change, stopper,
                       remaining[0] if remaining else None, read_state, params)


def _moved_by_someone_else(run: RunInfo, st, remaining: list[Migration]) -> PreCheckFailed:
    """golang-migrate said "no change" although steps were planned: another run moved the database while this
    one waited for golang-migrate's lock. Nothing was applied by this run."""
    return PreCheckFailed(
        "migration_lock",
        f"another run moved {run.component} to version {st.version_label} while this one waited for "
        f"golang-migrate's lock; this run applied nothing (planned next: {remaining[0].id})",
        hint="check status before running again",
    )


def _previous(target: Target, migration: Migration) -> Migration | None:
    before = [m for m in target.files.migrations if m.version < migration.version]
    return before[-1] if before else None


def _restore_point(target: Target, change: Change, failed: Migration) -> tuple[int | None, int | None]:
    """(the dirty version golang-migrate leaves when `failed` breaks, the clean version to restore)."""
    previous = _previous(target, failed)
    prev_version = previous.version if previous else None
    if change.direction == "up":
        return failed.version, prev_version
    return prev_version, failed.version


def _restorable(target: Target, change: Change, failed: Migration, read_state) -> bool:
    """Only an atomic file that left exactly golang-migrate's dirty mark may be marked clean again."""
    from migrate_wrapper import sqlinfo

    path = failed.path(change.direction)
    if path is None or not sqlinfo.analyse(path.read_text(encoding="utf-8", errors="replace")).atomic:
        return False
    state = read_state().state
    dirty_version, _ = _restore_point(target, change, failed)
    return state.dirty and state.version == dirty_version


def _restore(binary, target, run, listener, change, failed, read_state, params) -> str:
    _, clean = _restore_point(target, change, failed)
    result = migrate(binary, target, run, listener, ["force", str(clean if clean is not None else -1)], [], params)
    label = read_state().version_label
    if result.failure is not None:
        raise MigrationFailed(
            f"{failed.id} rolled back, but marking version {clean} clean failed: {result.failure.message}; "
            f"database at {label}",
            version=failed.id,
            state=label,
        )
    listener.note(run, "migration_state", f"{failed.id} rolled back whole; database marked clean at {label}",
                  version=failed.id, state=label)
    return label


def _blockers(conn: psycopg.Connection, failed: Migration, direction: str) -> str:
    from migrate_wrapper.checks import pre

    result = pre.blocking_locks(conn, [failed], direction, long_transaction_seconds=float("inf"))
    return result.reason if result.status == "fail" else "a session that has since released its lock"


def _cancel_lock_holder(target: Target, key: int) -> int | None:
    """Cancel the statement of the backend holding golang-migrate's lock: that is golang-migrate's own session.

    Runs on the Stopper's thread, so it uses a connection of its own."""
    conn = db.connect(target.url)
    try:
        row = conn.execute(
            """
            select l.pid, pg_cancel_backend(l.pid) from pg_locks l
            where l.locktype = 'advisory' and l.classid = 0 and l.objid = %s and l.objsubid = 1 and l.granted
              and l.database = (select oid from pg_database where datname = current_database())
            """,
            (key,),
        ).fetchone()
        return int(row[0]) if row else None
    finally:
        conn.close()


def _stopped(settings, binary, target, run, listener, change, stopper, failed, read_state, params) -> WrapperError:
    """Report a run stopped by the window or by the operator: what finished, what was interrupted, the state."""
    finished = ", ".join(s.id for s in run.steps if s.direction == change.direction) or "none"
    note = ""
    if failed is not None:
        if _restorable(target, change, failed, read_state):
            _restore(binary, target, run, listener, change, failed, read_state, params)
            note = f"; interrupted {failed.id} (rolled back whole)"
        elif read_state().state.dirty:
            note = f"; interrupted {failed.id} (left dirty: see the runbook's dirty-state recovery)"
        else:
            note = f"; stopped before {failed.id}"
    st = read_state()
    if stopper.reason == "window":
        message = (
            f"time window of {settings.migration_window_seconds}s exceeded: finished {finished}{note}; "
            f"database at version {st.version_label}"
        )
        listener.note(run, "guardrail_exceeded", message, finished=finished, state=st.version_label)
        return WindowExceeded(message)
    message = f"interrupted: finished {finished}{note}; database at version {st.version_label}"
    listener.note(run, "migration_interrupted", message, finished=finished, state=st.version_label)
    return Interrupted(message)
