"""apply: run every pending migration (or, with dry_run, validate and show them without touching the target)."""

from __future__ import annotations

from collections.abc import Callable

from migrate_wrapper import db, execute
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import MigrationFailed, UsageError
from migrate_wrapper.events import Listener
from migrate_wrapper.settings import Settings
from migrate_wrapper.target import Target
from migrate_wrapper.verbs import common


def apply(
    settings: Settings,
    target: Target,
    *,
    listener: Listener,
    confirm: Callable[[str], bool],
    dry_run: bool = False,
) -> str:
    """Returns the outcome word (ok, noop, dry_run); raises a WrapperError on any failure."""
    binary = common.binary(settings)  # a missing or wrong binary is a set-up error, found before anything else
    run = common.new_run("apply", target, settings, "up", dry_run)
    result: dict[str, str] = {}
    with common.tracked(run, listener, result):
        conn, reachable = common.connect(target)
        try:
            st = common.read_status(conn, target)
            run.from_version = st.current.id if st.current else None
            run.target = st.pending[-1].id if st.pending else run.from_version
            listener.run_started(run, [m.id for m in st.pending])
            pre.run_all(run, listener, [reachable, pre.files(st, "up"), pre.dirty(st, target.component.url_setting)])

            if not st.pending:
                listener.note(run, "migration_noop", f"{target.component.name}: nothing to apply")
                result["outcome"] = "noop"
                return "noop"
            if dry_run:
                for migration in st.pending:
                    assert migration.up is not None
                    body = migration.up.read_text(encoding="utf-8", errors="replace")
                    listener.note(
                        run, "dry_run_file", f"--- {migration.id} (up) ---\n{body.rstrip()}",
                        version=migration.id, sha256=migration.sha256("up"),
                    )
                result["outcome"] = "dry_run"
                return "dry_run"
            if not confirm(f"Apply {len(st.pending)} migration(s) to {target.component.name} ({run.database})?"):
                raise UsageError("not applied: the operator declined")

            outcome = execute.migrate(binary, target, run, listener, ["up"], st.pending)
            after = common.read_status(conn, target)
            if outcome.failure is not None:
                raise execute.failure(outcome, st.pending, common.state_label(after))
            expected = st.pending[-1].version
            if after.state.version != expected or after.state.dirty:
                raise MigrationFailed(
                    f"post-check failed: expected version {st.pending[-1].id}, database is at "
                    f"{common.state_label(after)}",
                    state=common.state_label(after),
                )
            return "ok"
        finally:
            conn.close()
