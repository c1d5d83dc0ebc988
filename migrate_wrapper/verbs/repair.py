"""repair: settle a dirty database. golang-migrate marks a step dirty before running it; repair decides from proof
whether the step's changes are there or not, and only then marks the right version clean.

Proof, strongest first:
1. The audit ledger's evidence of the run that left the mark: the verdict that run proved, or the transaction id it
   saw, judged now with pg_xact_status (the evidence a killed wrapper leaves behind).
2. The live schema compared with the schemas the migrations produce at the dirty version and its neighbours (built
   by golang-migrate in scratch databases): for an all-or-nothing file, one match decides.
3. The operator's own decision, `--assume committed|rolled-back`, for what no evidence settles (a data-only step
   whose run left nothing in the ledger): audited, and refused where the evidence says otherwise.

A file that can be partly applied (its own COMMIT, CONCURRENTLY, CALL, …) is never settled from the schema.
Anything unsettled is refused with the evidence shown, and the database is left as it is.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path

from migrate_wrapper.model.evidence import COMMITTED, NOT_RUN, ROLLED_BACK, StepEvidence, Verdict
from migrate_wrapper.runtime import proof, steps
from migrate_wrapper.postgres import ledger
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import MigrationFailed, UsageError
from migrate_wrapper.events import Listener
from migrate_wrapper.model.migrations import Migration
from migrate_wrapper.postgres.scratch import ScratchServer
from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext
from migrate_wrapper.runtime.pipeline import Options, approve

ASSUMPTIONS = {"committed": COMMITTED, "rolled-back": ROLLED_BACK}


class RepairRefused(MigrationFailed):
    """The evidence does not show which version is true; carries what it does show for the operator."""

    def __init__(self, message: str, *, diff: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "settle it by hand (see the runbook's Dirty database section); the "
                         "evidence is above", diff=diff)


@dataclass(frozen=True)
class Decision:
    version: int | None  # the version to mark clean
    how: str  # ledger | schema | operator
    why: str


def repair(settings: Settings, target: Target, *, listener: Listener, options: Options, server: ScratchServer,
           assume: str | None = None) -> str:
    binary = session.binary(settings)
    if assume is not None and assume not in ASSUMPTIONS:
        raise UsageError(f"--assume {assume} is not one of: {', '.join(ASSUMPTIONS)}")
    ctx = RunContext.start("repair", settings, target, listener, direction=ledger.REPAIR)
    run = ctx.run
    with ctx.tracked():
        conn, reachable = session.connect(target, settings)
        try:
            st = session.read_status(conn, target)
            run.from_version = session.reached(st)[0]
            listener.run_started(run, [])
            if not st.state.dirty:
                listener.note(run, "migration_noop", f"{target.component.name} is clean at {st.version_label}: "
                                                      "nothing to repair")
                run.reached = session.reached(st)
                ctx.outcome = "noop"
                return "noop"
            author, approver = approve(ctx)
            listener.checks_started(run, "pre")
            lock = session.run_lock(conn, target, st)
            step = _ledger_step(conn, target, st.state.version)
            pre.run_all(run, listener, [reachable, lock, _migration_lock(conn, target, st, step)])
            st = session.read_status(conn, target)  # read again under the run lock
            if not st.state.dirty:
                raise UsageError(f"{target.component.name} became clean at {st.version_label} meanwhile; nothing "
                                 "was repaired")
            decision = _decide(settings, binary, server, target, conn, st, assume, step)
            files = target.files.migrations
            run.target = _label(files, decision.version)
            if not options.confirm(f"Mark {target.component.name} clean at {run.target} (now {st.version_label})? "
                                   f"{decision.why}"):
                raise UsageError("nothing changed: the operator declined")

            ledger.begin(conn, run, author=author, approver=approver, migrate_version=binary.version)
            ledger.record_evidence(conn, run.run_id, {"decided_by": decision.how, "why": decision.why,
                                                      "assume": assume})
            error = None
            try:
                forced = steps.migrate(binary, target, run, listener,
                                         ["force", str(decision.version if decision.version is not None else -1)],
                                         steps.url_params(settings, conn))
                after = session.read_status(conn, target)
                run.reached = session.reached(after)
                if forced.failure is not None or after.state.dirty or after.state.version != decision.version:
                    raise MigrationFailed(
                        f"marking {run.target} clean failed"
                        + (f": {forced.failure.message}" if forced.failure else "")
                        + f"; database at {after.version_label}")
                listener.note(run, "migration_state", f"{target.component.name}: marked clean at {run.target} "
                              f"({decision.why})", state=after.version_label, decided_by=decision.how)
            except BaseException as exc:
                error = exc
                raise
            finally:
                session.finish_audit(conn, run, listener, error)
            return "ok"
        finally:
            conn.close()


def _migration_lock(conn, target: Target, st, step: StepEvidence | None):
    """golang-migrate's lock must be free — unless its holder is the backend of the very run that left the mark,
    still finishing a step whose client was killed: repair judges that step, waiting for it to end."""
    check = pre.migration_lock(conn, target.url, st)
    holder = ((check.data or {}).get("pid"), (check.data or {}).get("backend_start"))
    if check.status == "fail" and step is not None and holder == (step.pid, step.backend_start):
        return replace(check, status="warn", reason=(
            f"golang-migrate's lock is held by pid {step.pid}, the backend of the run that left the dirty mark: its "
            "client is gone; repair waits for its step to end, and ends it after the grace"))
    return check


def _decide(settings, binary, server, target: Target, conn, st, assume: str | None,
            step: StepEvidence | None) -> Decision:
    files = target.files.migrations
    dirty = st.state.version
    _candidates(files, dirty)  # the dirty version must be among the files
    direction = step.direction if step is not None else None
    if step is not None:
        partial = proof.not_atomic(target.url, Path(step.path) if step.path else None)
        verdict = _ledger_verdict(conn, step, partial, settings)
        if verdict.proved:
            decided = step.dirty_version if verdict.kind == COMMITTED else step.before_version
            _check_assumption(assume, verdict.kind, f"the audit ledger proves {step.id} {verdict.kind}")
            return Decision(decided, "ledger", f"{step.id} {verdict.kind.replace('_', ' ')}: {verdict.why} "
                                               "(audit ledger)")
    schema = _schema_evidence(binary, server, target, conn, st, direction)
    if schema.decided is not None:
        _check_assumption(assume, schema.kind, schema.why)
        return Decision(schema.decided[0], "schema", schema.why)
    if assume is not None:
        version, why = _assumed(files, dirty, direction, assume)
        return Decision(version, "operator", why)
    raise RepairRefused(f"not repaired: {schema.why}", diff=schema.diff, hint=schema.hint)


def _check_assumption(assume: str | None, proved: str, why: str) -> None:
    if assume is not None and ASSUMPTIONS[assume] != proved and not (proved == NOT_RUN and
                                                                     assume == "rolled-back"):
        raise UsageError(f"--assume {assume} contradicts the evidence: {why}; nothing changed",
                         hint="run repair without --assume to see the evidence")


def _ledger_step(conn, target: Target, dirty: int | None) -> StepEvidence | None:
    """The step the newest apply or rollback recorded, if its dirty mark is the one the database shows."""
    found = ledger.last_evidence(conn, target.component.name)
    if not found or not found[1]:
        return None
    step = StepEvidence.from_json(found[1])
    if step is None or step.dirty_version != dirty:
        return None
    st = session.read_status(conn, target)
    return step if proof.same_mark(step, proof.mark_xmin(conn, st.state.schema, st.state.table)) else None


def _ledger_verdict(conn, step: StepEvidence, partial: str | None, settings: Settings) -> Verdict:
    if step.verdict in (COMMITTED, ROLLED_BACK, NOT_RUN):
        return Verdict(step.verdict, step.why or "recorded by the run")
    # A run killed with the wrapper recorded what it saw, not a verdict: judge its transaction now.
    return proof.settle(conn, step, None, partial=partial, wait=settings.migration_window_grace_seconds)


@dataclass
class _SchemaEvidence:
    decided: tuple[int | None] | None  # (version,) when the schema proves it
    kind: str | None  # the verdict it amounts to, for --assume checks
    why: str
    diff: str = ""
    hint: str | None = None


def _schema_evidence(binary, server, target: Target, conn, st, direction: str | None) -> _SchemaEvidence:
    from migrate_wrapper.postgres import catalog
    from migrate_wrapper.schema import markdown
    from migrate_wrapper.schema.build import build_schema

    files = target.files.migrations
    dirty = st.state.version
    candidates = _candidates(files, dirty)
    before_up, after_down = _previous(files, dirty), _next(files, dirty)
    possible = {"up": [before_up, dirty], "down": [dirty, after_down]}.get(direction, candidates)
    live = markdown.compare_text(catalog.describe(conn, exclude={(st.state.schema, st.state.table)}))
    built: dict[int | None, str] = {}
    for version in candidates:
        if version not in possible:
            continue
        try:
            built[version] = markdown.compare_text(
                build_schema(binary, server, target.component, target.files, version, carry_from=target.url))
        except MigrationFailed:
            continue  # a version the files cannot even reach (its step fails) is not the true one
    matches = [v for v in built if built[v] == live]
    closest = min(built, key=lambda v: _diff_size(built[v], live)) if built else None
    diff = "".join(difflib.unified_diff(
        built.get(closest, "").splitlines(keepends=True), live.splitlines(keepends=True),
        fromfile=f"migrations up to {_label(files, closest)} (the closest)", tofile=f"live {target.url.masked()}"))
    steps = _steps_at(files, dirty, direction)
    if len(matches) == 1:
        version = matches[0]
        partial = [f"{m.id} ({d}): {why}" for m, d in steps
                   if (why := proof.not_atomic(target.url, m.path(d))) is not None]
        if partial:
            return _SchemaEvidence(None, None, (
                f"the live schema matches {_label(files, version)}, but the step may be partly applied "
                f"({'; '.join(partial)}): its data cannot be judged from the schema"), diff=diff, hint=_ASSUME_HINT)
        kind = COMMITTED if version == dirty else ROLLED_BACK
        return _SchemaEvidence((version,), kind, f"the live schema matches the migrations at {_label(files, version)}"
                               " and the step is all or nothing")
    if not matches:
        return _SchemaEvidence(None, None, (
            "the live schema matches none of " + ", ".join(_label(files, v) for v in built)
            + "; the failed step left partial changes or the evidence is ambiguous"), diff=diff)
    names = ", ".join(f"{m.id} ({d})" for m, d in steps) or "the step"
    return _SchemaEvidence(None, None, (
        f"the schema cannot tell which of {', '.join(_label(files, v) for v in matches)} is true: {names} changes "
        "data only, and no run recorded what became of it"), diff=diff, hint=_ASSUME_HINT)


_ASSUME_HINT = ("look at the data the step changes, then run repair --assume committed (its changes are there) or "
                "--assume rolled-back (none are); see the runbook's Dirty database section")


def _diff_size(a: str, b: str) -> int:
    return sum(1 for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="")
               if line[:1] in "+-" and not line.startswith(("+++", "---")))


def _steps_at(files: list[Migration], dirty: int | None, direction: str | None) -> list[tuple[Migration, str]]:
    """The step(s) that can have left this dirty mark: an up to it, or a down from the version after it."""
    up = next((m for m in files if m.version == dirty), None)
    after = _next(files, dirty)
    down = next((m for m in files if m.version == after), None) if after is not None else None
    steps = []
    if up is not None and direction in (None, "up"):
        steps.append((up, "up"))
    if down is not None and direction in (None, "down"):
        steps.append((down, "down"))
    return steps


def _assumed(files: list[Migration], dirty: int | None, direction: str | None, assume: str) -> tuple[int | None, str]:
    if assume == "committed":
        return dirty, f"the operator states that the step to {_label(files, dirty)} committed (--assume committed)"
    if direction == "down":
        version = _next(files, dirty)
        return version, f"the operator states that the down step from {_label(files, version)} rolled back"
    guessed = "" if direction == "up" else " (no run recorded its direction: taken as an up, golang-migrate's usual)"
    return _previous(files, dirty), (f"the operator states that the step to {_label(files, dirty)} rolled back"
                                      f"{guessed}")


def _candidates(migrations: list[Migration], dirty: int | None) -> list[int | None]:
    """The dirty version and its neighbours: a failed up leaves (V, dirty), a failed down V→P leaves (P, dirty)."""
    versions: list[int | None] = [None] + [m.version for m in migrations]
    if dirty not in versions:
        raise UsageError(f"dirty version {dirty} is not among the migration files; repair needs its files")
    i = versions.index(dirty)
    return [v for v in versions[max(0, i - 1): i + 2]]


def _previous(migrations: list[Migration], version: int | None) -> int | None:
    before = [m.version for m in migrations if version is not None and m.version < version]
    return before[-1] if before else None


def _next(migrations: list[Migration], version: int | None) -> int | None:
    after = [m.version for m in migrations if version is None or m.version > version]
    return after[0] if after else None


def _label(migrations: list[Migration], version: int | None) -> str:
    if version is None:
        return "none (no migration applied)"
    return next((m.id for m in migrations if m.version == version), str(version))
