"""The result document of apply, rollback and repair with --format json (specs/schemas/result.schema.json): one
entry per component run, built from the run's hooks, so a script reads the outcome instead of parsing logs."""

from __future__ import annotations

from migrate_wrapper.config.dburl import mask_text
from migrate_wrapper.errors import WrapperError, exit_code_of, printable
from migrate_wrapper.events import CheckResult, Listener, RunInfo, StepInfo


class ResultListener(Listener):
    def __init__(self) -> None:
        self.runs: list[dict] = []
        self._steps: dict[str, list[dict]] = {}  # run id → its steps, in the order they started
        self._checks: dict[str, list[dict]] = {}
        self._unfinished: dict[tuple[str, str, str], dict] = {}  # (run id, step id, direction) → its open entry

    def run_started(self, run: RunInfo, plan: list[str]) -> None:
        self._steps.setdefault(run.run_id, [])
        self._checks.setdefault(run.run_id, [])

    def step_started(self, run: RunInfo, step: StepInfo) -> None:
        key = (run.run_id, step.id, step.direction)
        retried = self._unfinished.pop(key, None)
        if retried is not None:  # started again (a lock timeout, retried): that attempt ended without its changes
            retried["status"] = "retried"
        entry = {"id": step.id, "direction": step.direction, "status": "unfinished", "duration_ms": None}
        self._steps.setdefault(run.run_id, []).append(entry)
        self._unfinished[key] = entry

    def step_finished(self, run: RunInfo, step: StepInfo) -> None:
        entry = self._unfinished.pop((run.run_id, step.id, step.direction), None)
        if entry is not None:
            entry.update(status="done", duration_ms=round(step.duration_ms or 0.0, 3))

    def checks_finished(self, run: RunInfo, phase: str, results: list[CheckResult]) -> None:
        self._checks.setdefault(run.run_id, []).extend(
            {"phase": r.phase, "name": r.name, "status": r.status, "reason": r.reason} for r in results)

    def run_finished(self, run: RunInfo, outcome: str, error: BaseException | None) -> None:
        self._unfinished = {key: entry for key, entry in self._unfinished.items() if key[0] != run.run_id}
        reached = None if run.reached is None else {"version": run.reached[0], "dirty": run.reached[1]}
        self.runs.append({
            "component": run.component,
            "command": run.command,
            "environment": run.environment,
            "dry_run": run.dry_run,
            "outcome": outcome,
            "exit_code": exit_code_of(error),
            "error": None if error is None else printable(mask_text(str(error)) or type(error).__name__),
            "evidence": mask_text(error.diff) if isinstance(error, WrapperError) and error.diff else None,
            "from": run.from_version,
            "target": run.target,
            "reached": reached,  # read from the database as the run ended; null: unknown
            "steps": self._steps.pop(run.run_id, []),
            "checks": self._checks.pop(run.run_id, []),
            "run_id": run.run_id,
            "trace_id": run.trace_id,
            "duration_ms": round(run.elapsed_ms(), 3),
        })

    def document(self) -> dict:
        return {"components": self.runs}
