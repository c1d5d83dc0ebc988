"""Checks that run before anything is applied or rolled back (and in dry runs): any failure stops the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate_wrapper.events import CheckResult, Listener, RunInfo
from migrate_wrapper.errors import PreCheckFailed
from migrate_wrapper.plan import Status

if TYPE_CHECKING:
    import psycopg


def _result(name: str, status: str, reason: str, **data: object) -> CheckResult:
    return CheckResult(phase="pre", name=name, status=status, reason=reason, data=data or None)


def connectivity(conn: psycopg.Connection) -> CheckResult:
    version = conn.execute("show server_version").fetchone()[0]
    return _result("connectivity", "ok", f"PostgreSQL {version}", server_version=version)


def files(st: Status, direction: str) -> CheckResult:
    """The files golang-migrate will run must be unambiguous: named by the house rule, paired, in order."""
    if st.state.version is not None and st.current is None:
        return _result("files", "fail", st.drift[0])
    out_of_order = [d for d in st.drift if "never applied" in d]
    if out_of_order:
        return _result("files", "fail", out_of_order[0])
    moving = st.pending if direction == "up" else st.applied
    unpaired = [m.id for m in moving if m.down is None or m.up is None]
    if unpaired:
        return _result("files", "fail", f"{unpaired[0]} has no {'down' if direction == 'up' else 'up'} file")
    if st.problems:
        return _result("files", "warn", st.problems[0], problems=st.problems)
    return _result("files", "ok", f"{len(st.applied)} applied, {len(st.pending)} pending")


def dirty(st: Status, url_setting: str) -> CheckResult:
    if not st.state.dirty:
        return _result("dirty", "ok", "clean")
    version = st.state.version
    below = [m for m in st.applied if version is None or m.version < version]
    previous = str(below[-1].version) if below else "-1"
    return _result(
        "dirty",
        "fail",
        f"database is dirty at version {version if version is not None else 'none'}: a migration failed half-way",
        hint=f"check whether its changes were rolled back; if so mark the previous version clean with "
        f"`migrate -path {st.folder} -database \"${url_setting}\" force {previous}`, then retry",
    )


def run_all(run: RunInfo, listener: Listener, checks: list[CheckResult]) -> list[CheckResult]:
    """Report each result, then stop at the first failure."""
    listener.checks_started(run, "pre")
    for result in checks:
        listener.check(run, result)
    listener.checks_finished(run, "pre", checks)
    failed = next((r for r in checks if r.status == "fail"), None)
    if failed:
        hint = (failed.data or {}).get("hint")
        raise PreCheckFailed(failed.name, failed.reason, hint=str(hint) if hint else None)
    return checks
