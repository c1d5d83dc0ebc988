"""Carry out a change (the steps of an apply or a rollback) with golang-migrate, lock-safely and within the window.

- golang-migrate gets `lock_timeout` and `x-statement-timeout` in its URL, so DDL never queues for long behind a
  transaction (and everyone else never queues behind the DDL), and `client_connection_check_interval`, so the server
  abandons a step whose golang-migrate died instead of committing it.
- It is told the direction and the number of planned steps (`up N` / `down N`): it can never reverse direction or
  run more steps than planned, and each step it starts is checked against the plan — one that is not in it (someone
  moved the database meanwhile) is cancelled at once and the run fails naming what ran.
- A step that golang-migrate leaves dirty (a lock timeout, a stop, a kill) is judged by `proof`: only a step proved
  committed is marked clean at its version, only one proved rolled back (or never sent) at the version before it.
  Otherwise the database stays dirty and the message says what is unknown and what to look at.
- A step that hit the lock timeout and is proved rolled back is retried with growing waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.model.evidence import COMMITTED, NOT_RUN, ROLLED_BACK, UNKNOWN, StepEvidence, Verdict
from migrate_wrapper.postgres import db, ledger, locks
from migrate_wrapper.runtime import proof
from migrate_wrapper.golang_migrate import runner
from migrate_wrapper.golang_migrate.output import MigrateFailure
from migrate_wrapper.errors import Interrupted, MigrationFailed, PreCheckFailed, WindowExceeded, WrapperError
from migrate_wrapper.events import RunInfo, StepInfo
from migrate_wrapper.model.migrations import Migration
from migrate_wrapper.model.plan import Change, next_step
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.steps import Progress, migrate, url_params
from migrate_wrapper.runtime.window import Stopper

if TYPE_CHECKING:

    from migrate_wrapper.runtime.context import RunContext
    from migrate_wrapper.runtime.session import StateReader

FORCE_LOCK_TIMEOUT_MS = 5000  # marking a version clean never waits longer than this behind a reader of the table


@dataclass
class _Context:
    """What every part of one carry_out shares: the run's context, and what this carry_out adds to it."""

    rc: RunContext
    read_state: StateReader
    change: Change
    params: dict[str, str]
    lock_key: int
    marks: frozenset[str]


def carry_out(rc: RunContext, read_state: StateReader, change: Change) -> None:
    """Run every step of `change`; raises MigrationFailed, WindowExceeded, Interrupted or PreCheckFailed with the
    state reached, proved from the database."""
    settings, binary, target, run, listener = rc.settings, rc.binary, rc.target, rc.run, rc.listener
    from migrate_wrapper.checks import pre

    first = read_state()
    ctx = _Context(rc, read_state, change,
                   url_params(settings, read_state.conn),
                   session.lock_key(target, first),
                   proof.bookkeeping(first.state.schema, first.state.table))
    deadline = run.started + settings.migration_window_seconds
    stopper = Stopper(settings.migration_window_grace_seconds, lambda: _cancel_lock_holder(target, ctx.lock_key),
                      acknowledge=lambda message: listener.note(run, "migration_stopping", message))
    remaining = list(change.steps)
    attempt = 1
    with stopper.handling_signals():
        while remaining and not stopper.fired:
            progress = Progress(remaining, change.direction, target, on_unplanned=stopper.halt)
            conn = read_state.conn
            with proof.Witness(conn, ctx.lock_key, ctx.marks, lambda step: _record(conn, run, step)) as witness:
                progress.witness = witness
                result = migrate(binary, target, run, listener, [change.direction, str(len(remaining))], ctx.params,
                                 deadline=deadline, stopper=stopper, progress=progress)
            stopper.join()
            if progress.unplanned:
                raise _unplanned(ctx, progress, result)
            remaining = remaining[len(result.steps):]
            if stopper.fired:
                raise _stopped(ctx, stopper, progress, result)
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
            if not progress.started and not read_state().state.dirty and _nothing_to_run(result.failure):
                raise _moved_by_someone_else(run, read_state(), remaining)
            if "due to user request" in result.failure.message and result.failure.kind in proof.BODY_FAILED:
                # Nobody here cancelled it: golang-migrate's x-statement-timeout is a client-side cancel.
                result.failure = replace(result.failure, message=(
                    f"exceeded the statement timeout of {ctx.params['x-statement-timeout']} ms "
                    "(MIGRATION_STATEMENT_TIMEOUT_MS)"))
            step, verdict = _judge(ctx, progress, result)
            failed = remaining[0] if remaining else None
            if result.failure.kind == "lock_timeout" and step is not None and verdict.kind == ROLLED_BACK:
                marked, phrase = _conclude(ctx, step, verdict)
                clean = read_state().version_label
                if not marked:
                    raise MigrationFailed(f"{phrase}; database at {clean}", version=step.id, state=clean)
                blocker = _blockers(read_state, failed, change.direction) if failed else "unknown"
                if attempt >= settings.migration_lock_retries:
                    raise MigrationFailed(
                        f"{step.id} could not take its lock after {attempt} tries ({result.failure.message}); "
                        f"blocked by {blocker}; database left clean at {clean}",
                        version=step.id, state=clean,
                    )
                wait = settings.migration_lock_retry_wait_seconds * 2 ** (attempt - 1)
                listener.note(
                    run, "lock_retry", f"{step.id}: lock timeout (blocked by {blocker}); retry {attempt + 1} of "
                    f"{settings.migration_lock_retries} in {wait:g}s", version=step.id, attempt=attempt,
                    blocker=blocker,
                )
                if time.monotonic() + wait >= deadline:
                    raise WindowExceeded(
                        f"time window of {settings.migration_window_seconds}s would be exceeded waiting to retry "
                        f"{step.id}; database left clean at {clean}"
                    )
                time.sleep(wait)
                attempt += 1
                continue
            raise _failed(ctx, result, step, verdict, failed)


def _nothing_to_run(failure: MigrateFailure) -> bool:
    """`up N` / `down N` found fewer steps than planned before running any: the database moved meanwhile."""
    return failure.message.startswith(("file does not exist", "limit ")) or "short by" in failure.message


def _record(conn, run: RunInfo, step: StepEvidence) -> None:
    """Keep the running step's evidence in the audit ledger (best effort: the run's own report does not need it)."""
    try:
        ledger.record_evidence(conn, run.run_id, step.to_json())
    except Exception:  # noqa: BLE001 - a missing ledger write costs repair evidence, never the run
        pass


_WHAT = {COMMITTED: "committed", ROLLED_BACK: "rolled back whole", NOT_RUN: "never ran",
         UNKNOWN: "unknown whether it committed"}


def _judge(ctx: _Context, progress: Progress, result: runner.RunResult) -> tuple[StepEvidence | None, Verdict | None]:
    """After golang-migrate stopped short: the step its dirty mark belongs to and the verdict on it; (None, None)
    when the database is clean."""
    last = progress.started[-1] if progress.started else None
    if last is not None and last.xid is None and not last.body_done:
        # golang-migrate's backend outlives it only until the server notices its client is gone (within
        # client_connection_check_interval): look at it before anything slower (the state, the file's parse).
        try:
            proof.look(ctx.read_state.conn, ctx.lock_key, ctx.marks, last, proof.body_start(last))
        except Exception:  # noqa: BLE001, S110 - a lost server: read_state reconnects, the verdict says what is missing
            pass
    st = ctx.read_state()
    if not st.state.dirty:
        if last is not None and len(result.steps) < len(progress.started) and st.state.version == last.dirty_version:
            _count_applied(ctx, last)  # stopped between its clean mark and its "Finished" line: it is done
        return None, None
    step = progress.dirty_step(st.state.version)
    if step is None:
        return None, Verdict(UNKNOWN, f"the database is dirty at {st.version_label}, which is not the mark of "
                                            "a step this run was running")
    step.mark_xmin = proof.mark_xmin(ctx.read_state.conn, st.state.schema, st.state.table)
    failure = result.failure if progress.started and step is progress.started[-1] else None
    partial = proof.not_atomic(ctx.rc.target.url, Path(step.path) if step.path else None)
    verdict = proof.settle(ctx.read_state.conn, step, failure, partial=partial,
                           wait=ctx.rc.settings.migration_window_grace_seconds, lock_key=ctx.lock_key, marks=ctx.marks)
    step.verdict, step.why = verdict.kind, verdict.why
    _record(ctx.read_state.conn, ctx.rc.run, step)
    return step, verdict


def _conclude(ctx: _Context, step: StepEvidence | None, verdict: Verdict | None) -> tuple[bool, str]:
    """Mark the version the verdict proves (a committed step: its own; rolled back or never sent: the one before).
    Returns (marked clean, the phrase for the operator). A committed step counts as applied: it ran, though
    golang-migrate never said so."""
    if verdict is None:
        return True, ""
    if step is None:
        return False, verdict.why
    head = f"{step.id} ({_WHAT[verdict.kind]}): {verdict.why}"
    if verdict.kind == UNKNOWN:
        return False, f"{head}; left dirty"
    version = step.dirty_version if verdict.kind == COMMITTED else step.before_version
    forced = migrate(ctx.rc.binary, ctx.rc.target, ctx.rc.run, ctx.rc.listener,
                     ["force", str(version if version is not None else -1)],
                     {**ctx.params, "lock_timeout": str(min(ctx.rc.settings.migration_lock_timeout_ms,
                                                            FORCE_LOCK_TIMEOUT_MS))})
    after = ctx.read_state()
    if forced.failure is not None or after.state.dirty or after.state.version != version:
        why = forced.failure.message if forced.failure else f"the database is at {after.version_label}"
        return False, (f"{head}; marking version {version if version is not None else 'none'} clean failed ({why}): "
                       "repair marks it from the audit ledger's evidence")
    if verdict.kind == COMMITTED:
        _count_applied(ctx, step)
    ctx.rc.listener.note(ctx.rc.run, "migration_state", f"{head}; database marked clean at {after.version_label}",
                      version=step.id, state=after.version_label, verdict=verdict.kind)
    return True, f"{head}; marked clean"


def _count_applied(ctx: _Context, step: StepEvidence) -> None:
    """A step that ran although golang-migrate never said "Finished": it counts in the report and the ledger."""
    migration = ctx.rc.target.files.by_version(step.version)
    ctx.rc.run.steps.append(StepInfo(id=step.id, version=step.version, direction=step.direction,
                                  sha256=migration.sha256(step.direction) if migration else None))


def _failed(ctx: _Context, result: runner.RunResult, step: StepEvidence | None, verdict: Verdict | None,
            failed: Migration | None) -> MigrationFailed:
    """golang-migrate stopped with an error. A step whose own SQL failed stays dirty, as golang-migrate leaves it,
    with the proof of what it left (repair marks it from that); anything else (a kill, a lost connection, a failed
    version update) is settled here where it is proved."""
    failure = result.failure
    assert failure is not None
    body_failed = failure.kind in proof.BODY_FAILED
    where = f"{failed.id} failed" if failed and (body_failed or failure.kind == "no_answer") else "golang-migrate failed"
    line = f" (line {failure.sql_line})" if failure.sql_line else ""
    if body_failed and step is not None and verdict is not None:
        phrase = "; it rolled back whole: repair marks the version before it clean" \
            if verdict.kind == ROLLED_BACK else f"; {verdict.why}"
    else:
        phrase = _conclude(ctx, step, verdict)[1]
        phrase = f"; {phrase}" if phrase else ""
    after = ctx.read_state()
    return MigrationFailed(
        f"{where}: {failure.message}{line}{phrase}; database now at version {after.version_label}",
        version=failed.id if failed else None,
        state=after.version_label,
        hint=next_step(ctx.rc.target.component.name, after.state),
    )


def _unplanned(ctx: _Context, progress: Progress, result: runner.RunResult) -> MigrationFailed:
    phrase = _conclude(ctx, *_judge(ctx, progress, result))[1]
    phrase = f"; {phrase}" if phrase else ""
    after = ctx.read_state()
    return MigrationFailed(
        f"golang-migrate ran {', '.join(progress.unplanned)}, which this run did not plan (the database moved "
        f"while it started: another tool or a raw migrate?); it was stopped at once{phrase}; database now at "
        f"version {after.version_label}",
        hint="check status and the audit ledger before running again",
        state=after.version_label,
    )


def _moved_by_someone_else(run: RunInfo, st, remaining: list[Migration]) -> PreCheckFailed:
    """golang-migrate found nothing to run although steps were planned: the database moved between the plan and
    golang-migrate's lock (another tool; wrapper runs are serialised). Nothing was applied by this run."""
    return PreCheckFailed(
        "migration_lock",
        f"{run.component} moved to version {st.version_label} while this run started golang-migrate; this run "
        f"applied nothing (planned next: {remaining[0].id})",
        hint="check status before running again",
    )


def _blockers(read_state: StateReader, failed: Migration, direction: str) -> str:
    from migrate_wrapper.checks import pre

    result = pre.blocking_locks(read_state.conn, [failed], direction, long_transaction_seconds=float("inf"))
    return result.reason if result.status == "fail" else "a session that has since released its lock"


def _cancel_lock_holder(target: Target, key: int) -> int | None:
    """Cancel the statement of the backend holding golang-migrate's lock: that is golang-migrate's own session.

    Runs on the Stopper's thread, so it uses a connection of its own."""
    conn = db.connect(target.url)
    try:
        return locks.cancel_migrate_lock_holder(conn, key)
    finally:
        conn.close()


def _stopped(ctx: _Context, stopper: Stopper, progress: Progress, result: runner.RunResult) -> WrapperError:
    """Report a run stopped by the window or by the operator: what finished, what became of the interrupted step
    (proved, or unknown), the state."""
    step, verdict = _judge(ctx, progress, result)
    marked, phrase = _conclude(ctx, step, verdict)
    if step is not None:
        note = f"; interrupted {phrase}"
    elif phrase:
        note = f"; {phrase}"
    else:
        done = {(s.version, s.direction) for s in ctx.rc.run.steps}
        nxt = next((m for m in ctx.change.steps if (m.version, ctx.change.direction) not in done), None)
        note = f"; stopped before {nxt.id}" if nxt else ""
    finished = ", ".join(s.id for s in ctx.rc.run.steps if s.direction == ctx.change.direction) or "none"
    st = ctx.read_state()
    run, settings, listener = ctx.rc.run, ctx.rc.settings, ctx.rc.listener
    if stopper.reason == "window":
        message = (
            f"time window of {settings.migration_window_seconds}s exceeded: finished {finished}{note}; "
            f"database at version {st.version_label}"
        )
        listener.note(run, "guardrail_exceeded", message, finished=finished, state=st.version_label)
        return WindowExceeded(message, hint=next_step(ctx.rc.target.component.name, st.state))
    message = f"interrupted: finished {finished}{note}; database at version {st.version_label}"
    listener.note(run, "migration_interrupted", message, finished=finished, state=st.version_label)
    return Interrupted(message, hint=next_step(ctx.rc.target.component.name, st.state))
