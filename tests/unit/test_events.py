"""The event table in events.py is the one list of `event` values: every name the code emits is in it, and the
README's table says the same (names and meanings)."""

from __future__ import annotations

import re
from pathlib import Path

import migrate_wrapper
from migrate_wrapper.errors import ApprovalMissing, Interrupted, PreCheckFailed, UsageError, WindowExceeded, outcome_of
from migrate_wrapper.events import EVENTS
from migrate_wrapper.telemetry import EXPORT_FAILED_EVENT

PACKAGE = Path(migrate_wrapper.__file__).parent
README = PACKAGE.parent / "README.md"
# note(run, "name", …), self._emit(run, "name", …) (the checks records: f"migration_{phase}_checks"), and a
# stdlib record's extra={"event": "name", …}
_EMITTED = re.compile(r"(?:\.note|_emit)\(\s*[\w.]+,\s*f?\"([a-z_{}]+)\"|\"event\": \"([a-z_]+)\"")


_PHASE = re.compile(r"(?:checks_started\(run, |report\(run, listener, )\"([a-z]+)\"")  # the check phases


def _emitted() -> set[str]:
    sources = [path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")]
    phases = {phase for text in sources for phase in _PHASE.findall(text)}
    assert {"pre", "post", "smoke"} <= phases
    names: set[str] = set()
    for text in sources:
        for found in _EMITTED.findall(text):
            name = found[0] or found[1]
            names |= {name.replace("{phase}", p) for p in phases} if "{phase}" in name else {name}
    return names | {EXPORT_FAILED_EVENT}


def test_every_emitted_event_is_in_the_table():
    emitted = _emitted()
    assert len(emitted) > 15  # the pattern still finds the calls
    assert emitted - EVENTS.keys() == set()


def test_the_table_lists_no_event_nobody_emits():
    assert EVENTS.keys() - _emitted() == set()


def test_the_readme_lists_every_event_with_its_meaning():
    text = README.read_text(encoding="utf-8")
    for event in EVENTS.values():
        assert f"| `{event.name}` | {event.meaning}" in text, event.name


def test_the_readme_lists_every_outcome():
    errors = [None, UsageError("x"), ApprovalMissing("x"), PreCheckFailed("c", "r"), WindowExceeded("x"),
              Interrupted("x"), RuntimeError("x"), KeyboardInterrupt()]
    outcomes = {outcome_of(e) for e in errors} | {"noop", "dry_run"}
    text = README.read_text(encoding="utf-8")
    assert all(f"| `{outcome}` |" in text for outcome in outcomes), outcomes


def test_the_stop_acknowledgement_sends_no_telemetry():
    """Ctrl-C is acknowledged from the signal handler (runtime/window.py) as a migration_stopping note. Telemetry
    sends only root-span notes to its exporter pipe, whose lock is not reentrant: this note must stay off the root
    span, or a Ctrl-C during a send would hang the wrapper."""
    from migrate_wrapper.events import EVENTS
    from migrate_wrapper.telemetry.spans import ROOT_NOTE_EVENTS

    assert EVENTS["migration_stopping"].on_root_span is False
    assert "migration_stopping" not in ROOT_NOTE_EVENTS
