"""apply: run every pending migration (or, with dry_run, validate and show them without touching the target)."""

from __future__ import annotations

from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.events import Listener
from migrate_wrapper.model.plan import Change
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext
from migrate_wrapper.runtime.pipeline import Options, run_change


def apply(settings: Settings, target: Target, *, listener: Listener, options: Options) -> str:
    """Returns the outcome word (ok, noop, dry_run); raises a WrapperError on any failure."""
    binary = session.binary(settings)  # a missing or wrong binary is a set-up error, found before anything else
    ctx = RunContext.start("apply", settings, target, listener, dry_run=options.dry_run, binary=binary)
    with ctx.tracked():
        conn, reachable = session.connect(target, settings)
        try:
            st, opened = session.open_change(conn, target, reachable, options.dry_run)
            ctx.run.from_version = st.current.id if st.current else None
            ctx.run.target = st.pending[-1].id if st.pending else ctx.run.from_version
            change = Change("up", st.pending, st.pending[-1].version if st.pending else st.state.version)
            run_change(ctx, conn, st, opened, change, options)
        finally:
            conn.close()
    return ctx.outcome or "ok"
