"""rollback: revert a named migration and every migration applied after it."""

from __future__ import annotations

from migrate_wrapper.model import plan
from migrate_wrapper.events import Listener
from migrate_wrapper.model.plan import Change
from migrate_wrapper.model.migrations import parse_id
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext
from migrate_wrapper.runtime.pipeline import Options, run_change


def rollback(settings: Settings, target: Target, version_id: str, *, listener: Listener, options: Options) -> str:
    parse_id(version_id)  # reject typos and shell metacharacters before touching anything
    binary = session.binary(settings)
    ctx = RunContext.start("rollback", settings, target, listener, direction="down", dry_run=options.dry_run,
                           binary=binary)
    run = ctx.run
    with ctx.tracked():
        conn, reachable = session.connect(target, settings)
        try:
            st, opened = session.open_change(conn, target, reachable, options.dry_run)
            run.from_version = st.current.id if st.current else None
            rb = plan.rollback(st, version_id)
            end = target.files.by_version(rb.end_version) if rb.end_version is not None else None
            run.target = end.id if end else None
            change = Change("down", rb.steps, rb.end_version)
            run_change(ctx, conn, st, opened, change, options)
        finally:
            conn.close()
    return ctx.outcome or "ok"
