"""One golang-migrate call, step by step as its output says: each step named from the files, reported to the
listeners, checked against the plan, and shown to the Witness while it runs; and the URL parameters every call gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from migrate_wrapper.model.evidence import StepEvidence
from migrate_wrapper.postgres import db
from migrate_wrapper.runtime import proof
from migrate_wrapper.golang_migrate import runner
from migrate_wrapper.events import Listener, RunInfo, StepInfo
from migrate_wrapper.model.migrations import Migration
from migrate_wrapper.golang_migrate.output import Event, StepFinished, StepStarted
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime.window import Stopper

if TYPE_CHECKING:
    import psycopg


def url_params(settings: Settings, conn: psycopg.Connection | None = None) -> dict[str, str]:
    """Added to golang-migrate's URL unless the operator set them. With the wrapper's connection `conn`, also the
    server's dead-client check where it has one (PostgreSQL 14+, and not on every platform)."""
    statement_ms = settings.migration_statement_timeout_ms or settings.migration_window_seconds * 1000
    params = {
        "application_name": db.APPLICATION_NAME,
        "connect_timeout": "10",
        "lock_timeout": str(settings.migration_lock_timeout_ms),
        "x-statement-timeout": str(statement_ms),
    }
    if conn is not None and _has_dead_client_check(conn):
        params["client_connection_check_interval"] = "300"
    return params


def _has_dead_client_check(conn: psycopg.Connection) -> bool:
    import psycopg

    try:  # local to this one statement's transaction: the wrapper's own session is left as it was
        conn.execute("select set_config('client_connection_check_interval', '300', true)")
        return True
    except psycopg.Error:  # unknown before 14; refused where the platform cannot poll a socket for a hang-up
        return False


def evidence_for(target: Target, version: int, direction: str, *, started: bool = False) -> StepEvidence:
    """A step as golang-migrate runs it: an up to V marks V dirty; a down from V marks the version below V dirty."""
    migration = target.files.by_version(version)
    previous = target.files.previous(version)
    path = migration.path(direction) if migration else None
    return StepEvidence(
        id=migration.id if migration else str(version), version=version, direction=direction,
        dirty_version=version if direction == "up" else previous,
        before_version=previous if direction == "up" else version,
        path=str(path) if path else None, started=started,
    )


@dataclass
class Progress:
    """One golang-migrate call, step by step as its output says, checked against the plan."""

    plan: list[Migration]
    direction: str
    target: Target
    on_unplanned: Callable[[], None] | None = None  # once golang-migrate starts a step that is not the next planned
    witness: proof.Witness | None = None
    started: list[StepEvidence] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)

    def step_started(self, event: StepStarted) -> None:
        step = evidence_for(self.target, event.version, event.direction, started=True)
        planned = self.plan[len(self.started)] if len(self.started) < len(self.plan) else None
        self.started.append(step)
        if planned is None or planned.version != event.version or event.direction != self.direction:
            self.unplanned.append(f"{step.id} ({event.direction})")
            if len(self.unplanned) == 1 and self.on_unplanned is not None:
                self.on_unplanned()
        if self.witness is not None:
            self.witness.watch(step)

    def step_finished(self) -> None:
        if self.witness is not None:
            self.witness.idle()

    def dirty_step(self, dirty_version: int | None) -> StepEvidence | None:
        """The step whose dirty mark the database shows: the last one started, or the next planned one, whose mark
        golang-migrate may have set just before it was stopped (its body then never ran). The latter only once this
        golang-migrate has run a step: it then holds its lock, so no one else can have set that mark."""
        if self.started and self.started[-1].dirty_version == dirty_version:
            return self.started[-1]
        index = len(self.started)
        if index and index < len(self.plan):
            nxt = evidence_for(self.target, self.plan[index].version, self.direction)
            if nxt.dirty_version == dirty_version:
                return nxt
        return None


def migrate(
    binary: Binary,
    target: Target,
    run: RunInfo,
    listener: Listener,
    command: list[str],
    params: dict[str, str],
    *,
    deadline: float | None = None,
    stopper: Stopper | None = None,
    progress: Progress | None = None,
) -> runner.RunResult:
    """One golang-migrate call; every step it reports is named from the files (planned or not)."""
    started: dict[tuple[int, str], StepInfo] = {}

    def step(event: StepStarted | StepFinished, duration: float | None = None) -> StepInfo:
        known = started.get((event.version, event.direction))  # the file is hashed once, when the step starts
        if known is None:
            migration = target.files.by_version(event.version)
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
            if progress is not None:
                progress.step_started(event)
            listener.step_started(run, step(event))
        elif isinstance(event, StepFinished):
            if progress is not None:
                progress.step_finished()
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
        env=target.url.migrate_env(),
    )
