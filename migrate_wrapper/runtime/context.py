"""RunContext: one run of a verb, made once by the verb and carried through plan → checks → golang-migrate →
post-checks → audit, instead of the same six arguments handed from function to function."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.errors import outcome_of
from migrate_wrapper.events import Listener, RunInfo

if TYPE_CHECKING:  # status never runs golang-migrate: it does not import the runner
    from migrate_wrapper.golang_migrate.runner import Binary


@dataclass
class RunContext:
    """One run of a verb: its settings, target, run and listeners, and how it ended."""

    settings: Settings
    target: Target
    run: RunInfo
    listener: Listener
    binary: Binary | None = None  # the vetted golang-migrate, for the verbs that run it
    outcome: str | None = None  # a better word than "ok" for a run that ended without error: noop, dry_run

    @classmethod
    def start(cls, command: str, settings: Settings, target: Target, listener: Listener, *, direction: str = "up",
              dry_run: bool = False, binary: Binary | None = None) -> RunContext:
        run = new_run(command, target, settings, direction, dry_run)
        if binary is not None:
            run.migrate = f"{binary.version} at {binary.path}"
        return cls(settings, target, run, listener, binary)

    @contextmanager
    def tracked(self) -> Iterator[RunContext]:
        """Always report the end of the run, with its outcome decided in one place (errors.outcome_of)."""
        error: BaseException | None = None
        try:
            yield self
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.listener.run_finished(self.run, outcome_of(error) if error is not None else self.outcome or "ok",
                                       error)


def new_run(command: str, target: Target, settings: Settings, direction: str, dry_run: bool) -> RunInfo:
    return RunInfo(
        command=command,
        component=target.component.name,
        direction=direction,
        dry_run=dry_run,
        environment=settings.migration_environment,
        database=target.url.masked(),
        server_address=target.url.host or "localhost",
        db_namespace=target.url.database,
        approved_by=settings.migration_approved_by,
        window_seconds=settings.migration_window_seconds if command != "status" else None,
        overridden=tuple(key for key in settings.overridden
                         if not key.endswith("_URL") or key in (target.component.url_setting, "MIGRATION_SCRATCH_URL")),
    )
