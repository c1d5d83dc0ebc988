"""Run one golang-migrate command for a target and turn its live output into step hooks and one clear outcome."""

from __future__ import annotations

import time

from migrate_wrapper import db, runner
from migrate_wrapper.errors import MigrationFailed
from migrate_wrapper.events import Listener, RunInfo, StepInfo
from migrate_wrapper.migrations import Migration
from migrate_wrapper.runner import Binary, Event, StepFinished, StepStarted
from migrate_wrapper.target import Target

# Added to the URL golang-migrate gets unless the operator set them: name the session for pg_stat_activity and the
# lock pre-checks, and never wait forever on a dead host.
URL_DEFAULTS = {"application_name": db.APPLICATION_NAME, "connect_timeout": "10"}


def migrate(
    binary: Binary,
    target: Target,
    run: RunInfo,
    listener: Listener,
    command: list[str],
    steps: list[Migration],
    *,
    deadline: float | None = None,
    on_deadline=None,
    url_params: dict[str, str] | None = None,
) -> runner.RunResult:
    """`steps` is the plan in the order golang-migrate will run it; it names each step and the one that failed."""
    by_version = {m.version: m for m in steps}
    started_at: dict[int, float] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, StepStarted):
            started_at[event.version] = time.monotonic()
            listener.step_started(run, _step(event.version, event.title, event.direction, by_version))
        elif isinstance(event, StepFinished):
            listener.step_finished(
                run, _step(event.version, event.title, event.direction, by_version, event.duration_ms)
            )

    argv = runner.build_argv(
        binary.path,
        source=target.files.folder,
        database_url=target.url.for_migrate({**URL_DEFAULTS, **(url_params or {})}),
        command=command,
    )
    result = runner.run(
        argv,
        mask=target.url.mask_text,
        on_event=on_event,
        on_output=lambda line: listener.output(run, line),
        deadline=deadline,
        on_deadline=on_deadline,
    )
    return result


def _step(
    version: int, title: str, direction: str, by_version: dict[int, Migration], duration_ms: float | None = None
) -> StepInfo:
    migration = by_version.get(version)
    step_id = migration.id if migration else f"{version}_{title}"
    return StepInfo(id=step_id, version=version, direction=direction, duration_ms=duration_ms)


def failed_step(result: runner.RunResult, steps: list[Migration]) -> Migration | None:
    """golang-migrate names a step only once it finished: the failed one is the next in the plan."""
    done = len(result.steps)
    return steps[done] if done < len(steps) else None


def failure(result: runner.RunResult, steps: list[Migration], state_label: str) -> MigrationFailed:
    assert result.failure is not None
    failed = failed_step(result, steps)
    where = f"{failed.id} failed" if failed and result.failure.kind == "migration_failed" else "golang-migrate failed"
    line = f" (line {result.failure.sql_line})" if result.failure.sql_line else ""
    return MigrationFailed(
        f"{where}: {result.failure.message}{line}; database now at {state_label}",
        version=failed.id if failed else None,
        state=state_label,
    )
