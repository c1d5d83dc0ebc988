"""What is applied, what is pending and what has drifted: the files compared with the database's version."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_wrapper.errors import UsageError
from migrate_wrapper.model.migrations import Migration, MigrationSet, parse_id


@dataclass(frozen=True)
class VersionState:
    """golang-migrate's migrations table as read from the database."""

    version: int | None  # None: no migration applied (or no table yet)
    dirty: bool
    table_exists: bool
    schema: str
    table: str


@dataclass(frozen=True)
class Applied:
    """When and by whom the audit ledger saw a migration applied."""

    at: str  # the run's finish, UTC, 'YYYY-MM-DD HH:MM UTC'
    by: str | None  # MIGRATION_AUTHOR of that run, when it was set
    duration_ms: float | None


@dataclass
class History:
    """What the ledger says about a component: which versions its runs left applied, and their files' sha256."""

    covered_from: int  # versions above this were only ever applied through the wrapper
    applied: set[int] = field(default_factory=set)
    unfinished: list[str] = field(default_factory=list)  # runs that started changing the database and never ended
    sha256: dict[int, str] = field(default_factory=dict)  # version → sha256 of the up file when it was applied
    last_step: dict | None = None  # the newest apply's or rollback's evidence of the step it was running
    applied_by: dict[int, Applied] = field(default_factory=dict)  # version → its newest apply through the wrapper


@dataclass(frozen=True)
class Change:
    """What apply or rollback will do once its plan is known."""

    direction: str  # up | down
    steps: list[Migration]  # in the order golang-migrate runs them
    end_version: int | None  # where the database ends when every step succeeded


@dataclass(frozen=True)
class Drift:
    """One way the files and the database disagree. Only `no_down_file` leaves the state anything but drift: it
    blocks a rollback past that migration, not an apply."""

    kind: str  # unknown_version | skipped | edited | no_down_file
    message: str
    migration: str | None = None  # the migration's id, when it names one

    def __str__(self) -> str:
        return self.message


@dataclass
class Status:
    """A component's state: the database's version against its files and its ledger."""

    component: str
    database: str  # masked URL
    folder: str
    state: VersionState
    current: Migration | None
    applied: list[Migration]
    pending: list[Migration]
    drift: list[Drift] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)  # applied migrations whose file changed since
    unfinished_runs: list[str] = field(default_factory=list)  # from the audit ledger: runs that never ended
    running: str | None = None  # a run in progress right now (it holds the run lock), when status looked for one
    applied_by: dict[int, Applied] = field(default_factory=dict)  # from the audit ledger, where it has them
    last_step: dict | None = None  # from the audit ledger: the evidence of the newest run's running step

    @property
    def verdict(self) -> str:
        """The worst that applies: dirty, drift, pending, or ok (up to date, clean, no drift) — or running: a run in
        progress holds the run lock, and a dirty mark is then its step at work, not a failure."""
        if self.running:
            return "running"
        if self.state.dirty:
            return "dirty"
        if any(d.kind != "no_down_file" for d in self.drift):
            return "drift"
        return "pending" if self.pending else "ok"

    @property
    def version_label(self) -> str:
        if self.state.version is None:
            return "none"
        label = self.current.id if self.current else str(self.state.version)
        return f"{label} (dirty)" if self.state.dirty else label


def status(
    component: str,
    database: str,
    files: MigrationSet,
    state: VersionState,
    *,
    history: History | None = None,
) -> Status:
    """`history` (the audit ledger) reveals files golang-migrate skipped and files edited after they were applied."""
    version = state.version
    never_applied: set[int] = set()
    if history is not None and version is not None:
        never_applied = {
            m.version for m in files.migrations
            if history.covered_from < m.version < version and m.version not in history.applied
        }
    applied = [m for m in files.migrations if version is not None and m.version <= version]
    pending = [m for m in files.migrations if version is None or m.version > version]
    current = files.by_version(version) if version is not None else None
    drift: list[Drift] = []
    if version is not None and current is None:
        drift.append(Drift("unknown_version", f"database version {version} is not among the migration files in "
                                              f"{files.folder}: golang-migrate cannot move from it"))
    for migration in applied:
        if never_applied and migration.version in never_applied:
            drift.append(Drift("skipped", f"{migration.id} sorts below the applied version but was never applied: "
                                          "golang-migrate skips it", migration.id))
    for migration in files.migrations:
        if migration.down is None:
            drift.append(Drift("no_down_file", f"{migration.id} has no down file", migration.id))
    changed = []
    for migration in applied:
        recorded = history.sha256.get(migration.version) if history else None
        if recorded and migration.up is not None and migration.sha256("up") != recorded:
            changed.append(migration.id)
            drift.append(Drift("edited", f"{migration.id} was edited after it was applied (sha256 recorded "
                                         f"{recorded[:12]}…, file {migration.sha256('up')[:12]}…)", migration.id))
    if never_applied:
        applied = [m for m in applied if m.version not in never_applied]
    return Status(
        component=component,
        database=database,
        folder=str(files.folder),
        state=state,
        current=current,
        applied=applied,
        pending=pending,
        drift=drift,
        problems=list(files.problems),
        edited=changed,
        unfinished_runs=list(history.unfinished) if history else [],
        last_step=history.last_step if history else None,
        applied_by=dict(history.applied_by) if history else {},
    )


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback to before a named migration reverts, newest first."""

    target: Migration  # the migration the operator named: it and everything after it are reverted
    steps: list[Migration]  # newest first, as golang-migrate runs them
    end_version: int | None  # the version the database ends at


def rollback(st: Status, version_id: str) -> RollbackPlan:
    """`version_id` as status prints it, or the bare version (leading zeros collapse, as in golang-migrate)."""
    version, title = parse_id(version_id)  # the shape first: a clear error for typos and shell metacharacters
    applied_ids = ", ".join(m.id for m in st.applied) or "none"
    target = next((m for m in st.applied if m.version == version), None)
    if target is None or title is not None and version_id not in (target.id, f"{target.version}_{target.slug}"):
        if target is not None:
            reason = f"version {target.version_text} is {target.id}, not {version_id}"
        else:
            reason = f"{version_id} is not applied to {st.component}"
        raise UsageError(f"{reason}; applied versions: {applied_ids}")
    steps = sorted((m for m in st.applied if m.version >= target.version), key=lambda m: m.version, reverse=True)
    before = [m for m in st.applied if m.version < target.version]
    return RollbackPlan(target=target, steps=steps, end_version=before[-1].version if before else None)


def repair_command(component: str) -> str:
    """The one next step for a dirty database, as status, the pre-check, a failed run and the runbook all say it."""
    return f"run scripts/db/repair.sh --component {component} --env <file>"


def next_step(component: str, state: VersionState) -> str:
    """What to do after a run that failed or was stopped, from the state it left."""
    if state.dirty:
        return (f"{repair_command(component)}: it marks the right version clean from the evidence, or says what "
                "to decide (runbook: Dirty database)")
    return "the database is clean: fix the cause, then run apply (or the rollback) again"
