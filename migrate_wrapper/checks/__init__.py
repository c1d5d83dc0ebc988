"""Pre- and post-checks: real SQL against the real server, each returning a CheckResult."""

from __future__ import annotations

from migrate_wrapper.events import CheckResult, Listener, RunInfo


def report(run: RunInfo, listener: Listener, phase: str, results: list[CheckResult]) -> CheckResult | None:
    """Hand every result to the listeners as one phase, which the caller started (listener.checks_started) as its
    checks began; return the first failure, if any."""
    for result in results:
        listener.check(run, result)
    listener.checks_finished(run, phase, results)
    return next((r for r in results if r.status == "fail"), None)
