"""Human rendering: the status table, the plan, live step lines and the final summary (stdout)."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import IO

from migrate_wrapper.errors import plural
from migrate_wrapper.events import CheckResult, Listener, RunInfo, StepInfo
from migrate_wrapper.model.plan import Status, next_step
from migrate_wrapper.output.ticker import StepWatch


_COLOURS = {"ok": "32", "warn": "33", "fail": "31", "pending": "33", "running": "33", "drift": "31", "dirty": "31"}


def colour_wanted(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _paint(text: str, status: str, on: bool) -> str:
    code = _COLOURS.get(status)
    return f"\033[{code}m{text}\033[0m" if on and code else text


_VERDICT = {"ok": "up to date", "dirty": "a migration did not finish", "drift": "the files and the database disagree",
            "running": "a run is in progress"}


def verdict_line(st: Status, colour: bool = False) -> str:
    """`operational: PENDING — 2 to apply`: the state at a glance, first."""
    why = f"{plural(len(st.pending), 'migration')} to apply" if st.verdict == "pending" else _VERDICT[st.verdict]
    return f"{st.component}: {_paint(st.verdict.upper(), st.verdict, colour)} — {why}"


def status_text(st: Status, environment: str | None = None, *, colour: bool = False) -> str:
    lines = [
        verdict_line(st, colour),
        f"component: {st.component}",
        *([f"environment: {environment}"] if environment else []),
        f"database:  {st.database}",
        f"folder:    {st.folder}",
        f"version:   {st.version_label}",
        f"applied:   {len(st.applied)}",
    ]
    lines += [f"  {m.id}{_applied(st, m.version)}" for m in st.applied]
    lines.append(f"pending:   {len(st.pending)}")
    lines += [f"  {m.id}" for m in st.pending]
    if st.running:
        lines.append(f"RUNNING:   {st.running}" + ("; the dirty mark is its step in progress, not a failure: do not "
                                                   "repair" if st.state.dirty else ""))
    elif st.state.dirty:
        lines.append(
            f"DIRTY: a migration did not finish; {next_step(st.component, st.state)}"
        )
    lines += _grouped("drift:     ", [d.message for d in st.drift])
    lines += _grouped("warning:   ", st.problems)
    return "\n".join(lines)


def _applied(st: Status, version: int) -> str:
    """`  applied 2026-11-30 10:00 UTC by alice (12.0ms)` where the audit ledger saw it applied."""
    seen = st.applied_by.get(version)
    if seen is None:
        return ""
    by = f" by {seen.by}" if seen.by else ""
    took = f" ({_ms(seen.duration_ms)})" if seen.duration_ms is not None else ""
    return f"  applied {seen.at}{by}{took}"


_SUBJECT = re.compile(r"^(\d+_\S*?|\S+\.\S+?):? (.*)$")  # "<id> has no down file", "<file name>: …"
GROUP_AFTER = 3  # more lines than this of one kind become one line with a count and the first few names


def _grouped(prefix: str, items: list[str]) -> list[str]:
    """One line per item, except that items of one kind (the same text about different migrations) are counted on
    one line: a history of hundreds of files stays readable."""
    kinds: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        m = _SUBJECT.match(item)
        kinds.setdefault(m.group(2) if m else item, []).append((m.group(1) if m else "", item))
    out = []
    for kind, members in kinds.items():
        if len(members) <= GROUP_AFTER:
            out += [f"{prefix}{item}" for _, item in members]
        else:
            names = ", ".join(subject for subject, _ in members[:GROUP_AFTER])
            out.append(f"{prefix}{len(members)} × {kind}: {names}, …")
    return out


def status_document(statuses: list[Status]) -> dict:
    return {"components": [status_dict(st) for st in statuses]}


def status_dict(st: Status) -> dict:
    """specs/schemas/status.schema.json describes it: every version a string id or null."""
    version = st.current.id if st.current else None if st.state.version is None else str(st.state.version)
    return {
        "component": st.component,
        "state": st.verdict,
        "database": st.database,
        "folder": st.folder,
        "version": version,
        "dirty": st.state.dirty,
        "running": st.running,
        "migrations_table": f"{st.state.schema}.{st.state.table}",
        "applied": [{"version": m.version_text, "slug": m.slug, "id": m.id, **_applied_fields(st, m.version)}
                    for m in st.applied],
        "pending": [{"version": m.version_text, "slug": m.slug, "id": m.id} for m in st.pending],
        "drift": [{"kind": d.kind, "migration": d.migration, "message": d.message} for d in st.drift],
        "problems": st.problems,
    }


def _applied_fields(st: Status, version: int) -> dict:
    seen = st.applied_by.get(version)
    return {"applied_at": seen.at if seen else None, "applied_by": seen.by if seen else None,
            "duration_ms": seen.duration_ms if seen else None}


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


class ConsoleListener(Listener):
    """Readable progress for an operator; writes to stdout."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.colour = colour_wanted(self.stream)
        self._watch = StepWatch(0.5, self._show)
        self._drawn = False
        self._position: dict[str, tuple[set[tuple[str, str]], int]] = {}  # run id → (steps started, planned)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run_started(self, run: RunInfo, plan: list[str]) -> None:
        if run.command == "status":
            return  # the status table is printed whole by the CLI
        self._position[run.run_id] = (set(), len(plan))
        verb = {"up": "apply", "down": "roll back"}.get(run.direction, run.command)
        dry = " (dry run: nothing will be changed)" if run.dry_run else ""
        self._print(f"{run.component} @ {run.database} ({run.environment}): {verb} {len(plan)} migration(s){dry}")
        self._print(f"  from {run.from_version or 'none'} to {run.target or 'none'}")
        if run.migrate:
            self._print(f"  golang-migrate {run.migrate}")
        for key in run.overridden:
            self._print(f"  note: {key} comes from the environment, not the --env file (the environment wins)")
        for step in plan:
            self._print(f"  - {step}")

    def check(self, run: RunInfo, result: CheckResult) -> None:
        self._print(f"  [{_paint(f'{result.status:>4}', result.status, self.colour)}] {result.phase}-check "
                    f"{result.name}: {result.reason}")
        if result.rows is not None:
            for line in render_deltas(result):
                self._print(f"    {line.strip()}")

    def step_started(self, run: RunInfo, step: StepInfo) -> None:
        started, planned = self._position.setdefault(run.run_id, (set(), 0))
        started.add((step.id, step.direction))  # a retried step counts once
        if self.live:
            self._watch.started(run, step)

    def _show(self, run: RunInfo, step: StepInfo, elapsed: float) -> None:
        verb = "applying" if step.direction == "up" else "reverting"
        left = run.time_left()
        window = f", {left:.0f}s left in the window" if left is not None else ""
        started, planned = self._position.get(run.run_id, (set(), 0))
        position = f"step {len(started)}/{planned}: " if planned else ""
        self.stream.write(f"\r\033[K  {position}{verb} {step.id} … {_ms(elapsed * 1000)}{window}")
        self.stream.flush()
        self._drawn = True

    def _end_live_line(self) -> None:
        self._watch.finished()
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def step_finished(self, run: RunInfo, step: StepInfo) -> None:
        self._end_live_line()
        self._print(f"  {'applied' if step.direction == 'up' else 'reverted'} {step.id} ({_ms(step.duration_ms)})")

    def note(self, run: RunInfo, event: str, message: str, **data: object) -> None:
        if event in ("dry_run_file", "migration_noop", "guardrail_exceeded", "approval_granted", "migration_state",
                     "lock_retry", "rehearsal", "migration_stopping"):
            self._end_live_line()  # on a line of its own, not after the live one
            self._print(message)

    def run_finished(self, run: RunInfo, outcome: str, error: BaseException | None) -> None:
        self._end_live_line()
        self._watch.close()
        if error is None and run.command != "status":
            self._print(f"{run.component}: {outcome} at {run.target or 'none'} in {_ms(run.elapsed_ms())} "
                        f"(trace {run.trace_id})")


def _ms(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f}ms" if value < 1000 else f"{value / 1000:.2f}s"


_LABELS = {"dropped": "DROPPED", "lost_rows": "LOST ROWS", "new": "new table", "changed": ""}


def render_deltas(result: CheckResult, limit: int = 20) -> list[str]:
    """`  public.orders  10 → 7  (-3)  LOST ROWS` per changed table, biggest change first; "~" marks estimates."""
    deltas = result.rows.deltas if result.rows is not None else ()
    shown = deltas[: max(limit, 0)]
    width = max((len(d.table) for d in shown), default=0)
    lines = []
    for d in shown:
        mark = "" if d.exact else "~"
        before = "—" if d.before is None else f"{mark}{d.before:,}"
        after = "—" if d.after is None else f"{mark}{d.after:,}"
        label = "fewer rows (estimate)" if d.status == "lost_rows" and not d.flagged else _LABELS[d.status]
        lines.append(f"  {d.table:<{width}}  {before} → {after}  ({mark}{d.delta:+,})  {label}".rstrip())
    if len(deltas) > len(shown):
        lines.append(f"  … and {plural(len(deltas) - len(shown), 'more table')}")
    return lines
