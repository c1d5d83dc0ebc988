"""What apply and rollback share once they know their plan: pre-checks, approval, confirmation, the audit ledger,
golang-migrate itself, and the post-checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.checks import approval
from migrate_wrapper.runtime import execute
from migrate_wrapper.postgres import ledger
from migrate_wrapper.checks import pre, report
from migrate_wrapper.errors import MigrationFailed, UsageError, WrapperError
from migrate_wrapper.events import CheckResult
from migrate_wrapper.model.plan import Change
from migrate_wrapper.model.plan import Status
from migrate_wrapper.postgres.scratch import ScratchServer
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Options:
    confirm: Callable[[str], bool]
    dry_run: bool = False
    evidence: Path | None = None
    fail_on_row_loss: bool = False
    scratch: ScratchServer | None = None  # dry runs: rehearse the pending migrations on a clone there


def pre_checks(ctx: RunContext, conn: psycopg.Connection, st: Status, opened: list[CheckResult],
               change: Change) -> list[CheckResult]:
    settings, target, run, listener = ctx.settings, ctx.target, ctx.run, ctx.listener
    listener.checks_started(run, "pre")  # the phase's span covers the checks' own time, not only their report
    # The locks come first: while another run holds them, its step shows as dirty, and "another migration is
    # running" is the true reason.
    results = list(opened)
    if change.steps:
        results.append(pre.migration_lock(conn, target.url, st))
    results += [pre.files(st, change.direction, change.steps), pre.dirty(st, target.component.url_setting),
                pre.checksums(st, settings.migration_environment)]
    if ctx.binary is not None:
        results.append(pre.binary_version(ctx.binary))
    if run.dry_run:
        results.append(pre.sql(change.steps, change.direction))
        results.append(pre.lint(settings.project_root(), target.component, change.steps, change.direction))
    if change.steps:
        results.append(pre.blocking_locks(conn, change.steps, change.direction,
                                          long_transaction_seconds=settings.migration_long_transaction_seconds))
    return pre.run_all(run, listener, results)


def run_change(ctx: RunContext, conn: psycopg.Connection, st: Status, opened: list[CheckResult], change: Change,
               options: Options) -> None:
    """`opened`: the checks already made while opening the target (connectivity, and the run lock unless a dry run).
    Sets ctx.outcome to noop or dry_run where that is how the run ends."""
    settings, binary, target, run, listener = ctx.settings, ctx.binary, ctx.target, ctx.run, ctx.listener
    listener.run_started(run, [m.id for m in change.steps])
    if not run.dry_run:
        author, approver = approve(ctx)
    checks = pre_checks(ctx, conn, st, opened, change)
    if not change.steps:
        verb = "apply" if change.direction == "up" else "roll back"
        listener.note(run, "migration_noop", f"{target.component.name}: nothing to {verb}")
        run.reached = session.reached(st)
        ctx.outcome = "noop"
        return
    if run.dry_run:
        for migration in change.steps:
            path = migration.path(change.direction)
            body = _shown_body(path)
            listener.note(run, "dry_run_file", f"--- {migration.id} ({change.direction}) ---\n{body.rstrip()}",
                          version=migration.id, sha256=migration.sha256(change.direction))
        if options.scratch is not None:
            from migrate_wrapper.runtime.rehearsal import rehearse

            rehearsal = rehearse(settings, binary, target, st, server=options.scratch, listener=listener, run=run)
            listener.note(run, "rehearsal", rehearsal.summary().rstrip(), outcome=rehearsal.outcome)
            failure = rehearsal.error()  # WindowExceeded (5) or MigrationFailed (1); no evidence for a failed rehearsal
            if failure is not None:
                raise failure
        if options.evidence is not None:
            from migrate_wrapper.runtime import approval_evidence

            approval_evidence.write(options.evidence, run, change, checks)
        run.reached = session.reached(st)  # read under this run's checks; a dry run changes nothing
        ctx.outcome = "dry_run"
        return
    if not options.confirm(
        f"{'Apply' if change.direction == 'up' else 'Roll back'} {len(change.steps)} migration(s) of "
        f"{target.component.name} ({run.database}, {run.environment}) to {run.target or 'no version'} with "
        f"golang-migrate {run.migrate}?"
    ):
        raise UsageError("nothing changed: the operator declined")

    from migrate_wrapper.postgres import snapshot as snapshots

    exclude = {f"{st.state.schema}.{st.state.table}"}
    before = snapshots.snapshot(conn, exact_threshold_rows=settings.migration_exact_count_threshold, exclude=exclude,
                                connect_more=session.connector(target, settings))
    ledger.begin(conn, run, author=author, approver=approver, migrate_version=binary.version)
    reader = session.StateReader(target, settings, conn, run_lock_key=session.lock_key(target, st))
    error: BaseException | None = None
    try:
        execute.carry_out(ctx, reader, change)
        _post_checks(ctx, reader, change, before, exclude, options)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            session.finish_audit(reader.conn, run, listener, error)
        finally:
            final = reader.without_reconnecting()  # after the audit row: nothing may delay completing it
            run.reached = session.reached(final) if final is not None else None  # None: unknown
            reader.close()  # the connection it reconnected to, if the server went away (the caller closes `conn`)


SHOWN_LINES, SHOWN_BYTES = 200, 64 * 1024  # of a file too large to analyse, a dry run shows the start


def _shown_body(path: Path | None) -> str:
    from migrate_wrapper.model.migrations import too_big

    if path is None:
        return ""
    if (skipped := too_big(path)) is None:
        return path.read_text(encoding="utf-8", errors="replace")
    with open(path, encoding="utf-8", errors="replace") as file:
        head = "".join(file.read(SHOWN_BYTES).splitlines(keepends=True)[:SHOWN_LINES])  # lines may be 20 MB long
    return f"{head.rstrip()}\n-- … ({skipped}: only its start is shown)"


def approve(ctx: RunContext) -> tuple[str, str | None]:
    settings, run, listener = ctx.settings, ctx.run, ctx.listener
    try:
        author, approver = approval.check(settings)
    except WrapperError as exc:
        listener.note(run, "approval_denied", str(exc), environment=settings.migration_environment)
        raise
    if approver:
        listener.note(run, "approval_granted", f"approved by {approver} (author {author})", approver=approver,
                      author=author)
    return author, approver


def _post_checks(ctx: RunContext, reader, change: Change, before, exclude: set[str], options: Options) -> None:
    settings, target, run, listener = ctx.settings, ctx.target, ctx.run, ctx.listener
    from migrate_wrapper.checks import post
    from migrate_wrapper.postgres import snapshot as snapshots

    listener.checks_started(run, "post")
    after_state = reader()
    after = snapshots.snapshot(reader.conn, exact_threshold_rows=settings.migration_exact_count_threshold,
                               exclude=exclude, connect_more=session.connector(target, settings))
    reached = after_state.state.version == change.end_version and not after_state.state.dirty
    results = [
        CheckResult("post", "version", "ok" if reached else "fail",
                    f"at {after_state.version_label}" + ("" if reached else f", expected {run.target or 'none'}")),
        # Catalog estimates of big tables move with autovacuum; only a drop beyond 5% of one counts as a loss.
        post.row_counts(before, after, fail_on_row_loss=options.fail_on_row_loss, estimate_tolerance=0.05),
        post.schema_summary(before, after),
    ]
    failed = report(run, listener, "post", results)
    if failed:
        raise MigrationFailed(f"post-check failed: {failed.name}: {failed.reason}", state=after_state.version_label)
