"""status: what is applied, pending and drifted — read-only, with psycopg; golang-migrate is never run."""

from __future__ import annotations

from migrate_wrapper.events import Listener
from migrate_wrapper.model.plan import Status
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext


def status(settings: Settings, target: Target, *, listener: Listener) -> Status:
    ctx = RunContext.start("status", settings, target, listener)
    run = ctx.run
    with ctx.tracked():
        st = session.status_once(target, settings, look_for_runs=True)
        run.from_version = run.target = st.current.id if st.current else None
        listener.run_started(run, [m.id for m in st.pending])
        listener.note(
            run, "migration_status", f"{target.component.name} at {st.version_label}",
            version=run.target, dirty=st.state.dirty, applied=[m.id for m in st.applied],
            pending=[m.id for m in st.pending], drift=[d.message for d in st.drift], running=st.running,
            state=st.verdict,
        )
        for drift in st.drift:
            listener.note(run, "migration_drift", drift.message, kind=drift.kind, migration=drift.migration)
        return st
