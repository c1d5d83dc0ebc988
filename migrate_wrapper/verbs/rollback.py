"""rollback: revert a named migration and every migration applied after it."""

from __future__ import annotations

from collections.abc import Callable

from migrate_wrapper import execute, plan
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import MigrationFailed, UsageError
from migrate_wrapper.events import Listener
from migrate_wrapper.migrations import parse_id
from migrate_wrapper.settings import Settings
from migrate_wrapper.target import Target
from migrate_wrapper.verbs import common


def rollback(
    settings: Settings,
    target: Target,
    version_id: str,
    *,
    listener: Listener,
    confirm: Callable[[str], bool],
) -> str:
    parse_id(version_id)  # reject typos and shell metacharacters before touching anything
    binary = common.binary(settings)
    run = common.new_run("rollback", target, settings, "down", False)
    with common.tracked(run, listener, {}):
        conn, reachable = common.connect(target)
        try:
            st = common.read_status(conn, target)
            run.from_version = st.current.id if st.current else None
            rb = plan.rollback(st, version_id)
            end = target.files.by_version(rb.end_version) if rb.end_version is not None else None
            run.target = end.id if end else None
            listener.run_started(run, [m.id for m in rb.steps])
            pre.run_all(run, listener, [reachable, pre.files(st, "down"), pre.dirty(st, target.component.url_setting)])
            if not confirm(
                f"Roll back {len(rb.steps)} migration(s) of {target.component.name} ({run.database}) "
                f"to {run.target or 'no migrations'}?"
            ):
                raise UsageError("not rolled back: the operator declined")

            outcome = execute.migrate(binary, target, run, listener, ["down", str(len(rb.steps))], rb.steps)
            after = common.read_status(conn, target)
            if outcome.failure is not None:
                raise execute.failure(outcome, rb.steps, common.state_label(after))
            if after.state.version != rb.end_version or after.state.dirty:
                raise MigrationFailed(
                    f"post-check failed: expected {run.target or 'no version'}, database is at "
                    f"{common.state_label(after)}",
                    state=common.state_label(after),
                )
            return "ok"
        finally:
            conn.close()
