"""What happens during a run, as a small set of callbacks that the console, the JSON log and the tracer listen to.

Verbs call these hooks; they never print, log or trace by themselves. RunInfo is the run's own record: the verb
fills in where it starts and aims (from_version, target) and the engine the steps it finished; listeners only read
it (the trace id is the run's, chosen with it, not the tracer's).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

LOGGER_NAME = "migrate_wrapper"  # the stdlib logger every record of a run goes to (output.logs configures it)


@dataclass(frozen=True)
class EventKind:
    """One value of the `event` field of the JSON log records: what it means and how each listener treats it."""

    name: str
    meaning: str
    warning: bool = False  # logged at warning level (else info, or as the hook decides: a failed check, an error)
    shown_elsewhere: bool = False  # in text mode the console report or the CLI's error line already says it
    on_root_span: bool = False  # a note that is also an event on the run's root span


EVENTS: dict[str, EventKind] = {e.name: e for e in (
    EventKind("migration_start", "a run began: command, database, from and target versions, the plan"),
    EventKind("migration_pre_checks", "the pre-checks' results (warning level when one warned or failed)",
              shown_elsewhere=True),
    EventKind("migration_step_start", "golang-migrate began a step"),
    EventKind("migration_progress", "a step still running, every MIGRATION_PROGRESS_SECONDS"),
    EventKind("migration_step_finish", "golang-migrate finished a step, with its duration"),
    EventKind("migration_post_checks", "the post-checks' results: versions, row deltas, schema summary",
              shown_elsewhere=True),
    EventKind("migration_smoke_checks", "smoke-test's checks: schema against the migrations, smoke queries"),
    EventKind("migration_error", "the run's error (error level)", shown_elsewhere=True),
    EventKind("migration_finish", "a run ended: its outcome and duration"),
    EventKind("migration_status", "status: version, dirty, applied, pending, drift"),
    EventKind("migration_drift", "one drift between the files and the database", warning=True),
    EventKind("migration_noop", "nothing to apply, roll back or repair"),
    EventKind("migration_state", "the state a stopped or failed run left, proved from the database"),
    EventKind("migration_stopping", "a Ctrl-C or SIGTERM was taken, and what it does (each one said at once)",
              warning=True, shown_elsewhere=True),
    EventKind("migration_interrupted", "Ctrl-C or SIGTERM: the run stopped, and the state it left"),
    EventKind("lock_retry", "a step gave up on a lock (lock_timeout) and is retried"),
    EventKind("dry_run_file", "a dry run shows one file it would run"),
    EventKind("rehearsal", "a rehearsal's summary (apply --dry-run --rehearse, measure-window)"),
    EventKind("rehearsal_phase", "one direction of a rehearsal, timed"),
    EventKind("approval_granted", "the two-person rule was met", on_root_span=True),
    EventKind("approval_denied", "the two-person rule was not met", warning=True, on_root_span=True),
    EventKind("guardrail_exceeded", "the time window was exceeded", warning=True, on_root_span=True),
    EventKind("scratch_drop_failed", "a throwaway database could not be dropped: drop it by hand", warning=True),
    EventKind("audit_write_failed", "the audit row could not be completed (the run's own outcome stands)"),
    EventKind("command_error", "the command's final error, with its exit_code and outcome (error level; with "
              "--log-format text it is the `error: …` line)", shown_elsewhere=True),
    EventKind("telemetry_export_failed", "spans or metrics were not exported, and why", warning=True),
)}


@dataclass(frozen=True)
class StepInfo:
    """One migration step as golang-migrate ran it (or is running it), named from the files."""

    id: str  # YYYYMMDDHHMM_slug
    version: int
    direction: str
    duration_ms: float | None = None
    sha256: str | None = None  # of the file that ran


@dataclass
class RunInfo:
    """One run of a command on one component: what every listener is told about it."""

    command: str  # apply | rollback | status
    component: str
    direction: str  # up | down
    dry_run: bool
    environment: str
    database: str  # masked URL
    server_address: str
    db_namespace: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    target: str | None = None  # migration id the run aims at ("none": nothing applied)
    from_version: str | None = None
    approved_by: str | None = None
    window_seconds: float | None = None  # the time window of an apply or rollback
    started: float = field(default_factory=time.monotonic)
    # W3C trace id (32 hex digits), chosen with the run: the tracer's root span takes it, so the audit row, the logs
    # and the evidence carry the same id whether telemetry is on or not.
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    overridden: tuple[str, ...] = ()  # settings whose --env file value the environment overrode (names only)
    migrate: str | None = None  # the golang-migrate in use, `4.19.1 at /path`, for the runs that run it
    # The database's version (id) and dirty flag as read when the run ended; None: unknown (not read, or the read
    # failed: the server was gone).
    reached: tuple[str | None, bool] | None = None
    steps: list[StepInfo] = field(default_factory=list)  # finished steps, in order, across retries

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def time_left(self) -> float | None:
        return None if self.window_seconds is None else self.window_seconds - self.elapsed_ms() / 1000.0


@dataclass(frozen=True)
class RowDelta:
    """One table whose row count changed, as the row-count post-check saw it."""

    table: str
    before: int | None  # None: a new table
    after: int | None  # None: a dropped table
    delta: int
    exact: bool  # both counts exact (else one is the planner's estimate)
    status: str  # changed | lost_rows | dropped | new
    flagged: bool  # a loss to tell: a dropped table, or lost rows beyond what estimates drift by
    partitioned: bool = False  # a partitioned parent: its partitions carry the rows (not counted in the totals)


@dataclass(frozen=True)
class RowCounts:
    """What a row-count check found: the tables whose rows changed, and the totals."""

    deltas: tuple[RowDelta, ...]  # biggest change first
    total_delta: int
    rows_changed: int  # sum of |delta| over the tables that hold rows
    tables_compared: int


@dataclass(frozen=True)
class CheckResult:
    """One pre-, post- or smoke check's verdict, with the facts behind it."""

    phase: str  # pre | post
    name: str
    status: str  # ok | warn | fail
    reason: str
    data: dict | None = None  # further facts for the JSON log
    hint: str | None = None  # what to do about a warn or fail
    rows: RowCounts | None = None  # a check that counted rows (maybe none changed)

    def log_fields(self) -> dict:
        """The facts of this result as one JSON log record's `checks` entry carries them."""
        rows = {}
        if self.rows is not None:  # asdict() would deep-copy every table's delta: one per table an apply created
            rows = {**vars(self.rows), "deltas": [dict(vars(delta)) for delta in self.rows.deltas]}
        return {**(self.data or {}), **({"hint": self.hint} if self.hint else {}), **rows}


class Listener:
    """Every hook is optional; the defaults do nothing."""

    def run_started(self, run: RunInfo, plan: list[str]) -> None: ...

    def checks_started(self, run: RunInfo, phase: str) -> None: ...

    def check(self, run: RunInfo, result: CheckResult) -> None: ...

    def checks_finished(self, run: RunInfo, phase: str, results: list[CheckResult]) -> None: ...

    def step_started(self, run: RunInfo, step: StepInfo) -> None: ...

    def step_finished(self, run: RunInfo, step: StepInfo) -> None: ...

    def output(self, run: RunInfo, line: str) -> None:
        """A (masked) line of golang-migrate's own output."""

    def note(self, run: RunInfo, event: str, message: str, **data: object) -> None:
        """Anything else worth a log line: approval_granted, guardrail_exceeded, …"""

    def run_finished(self, run: RunInfo, outcome: str, error: BaseException | None) -> None: ...


class Listeners(Listener):
    """Fans every hook out to each listener in order, skipping the listeners that leave a hook as Listener's no-op
    (the output hook runs for every line golang-migrate prints)."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = tuple(listeners)
        for name in _HOOKS:
            setattr(self, name, _fan_out([getattr(listener, name) for listener in listeners
                                          if getattr(getattr(listener, name), "__func__", None)
                                          is not getattr(Listener, name)]))


_HOOKS = tuple(name for name, value in vars(Listener).items() if callable(value) and not name.startswith("_"))


def _fan_out(hooks: list) -> Callable[..., None]:
    def fan_out(*args: object, **kwargs: object) -> None:
        for hook in hooks:
            hook(*args, **kwargs)

    return fan_out
