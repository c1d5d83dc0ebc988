"""What golang-migrate's output says: its step lines as events, and its error text as one clear failure.

golang-migrate writes everything to stderr. With -verbose each step is announced when it starts
(`Read and execute V/u title`) and when it ends (`Finished V/u title (read 1ms, ran 2ms)`), which is what lets the
wrapper time, log and trace every step live. The first `error:` line ends the useful output: everything after it
is the error (a failing file is dumped whole, so it spans lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIMESTAMP = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ")
_STEP = r"(?P<version>\d+)/(?P<direction>[ud]) (?P<title>.*?)"
_STEP_START = re.compile(rf"^Read and execute {_STEP}$")
_STEP_FINISH_VERBOSE = re.compile(rf"^Finished {_STEP} \(read (?P<read>[^,]+), ran (?P<ran>[^)]+)\)$")
_STEP_FINISH_PLAIN = re.compile(rf"^{_STEP} \((?P<took>[0-9][^)]*)\)$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def go_duration_ms(text: str) -> float:
    """Parse a Go time.Duration string (`850µs`, `1.2s`, `1m3.5s`) into milliseconds."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _UNIT_MS[u] for n, u in parts)


# -- events parsed from golang-migrate's output ------------------------------------------------------------------
@dataclass(frozen=True)
class StepStarted:
    version: int
    direction: str  # "up" | "down"
    title: str


@dataclass(frozen=True)
class StepFinished:
    version: int
    direction: str
    title: str
    duration_ms: float


@dataclass(frozen=True)
class NoChange:
    pass


@dataclass(frozen=True)
class Stopping:
    """golang-migrate received SIGINT and will stop after the running step."""


@dataclass(frozen=True)
class ErrorLine:
    text: str


Event = StepStarted | StepFinished | NoChange | Stopping | ErrorLine


def parse_line(line: str) -> Event | None:
    """One line of golang-migrate output (verbose or not) → an event, or None for chatter."""
    line = _TIMESTAMP.sub("", line.rstrip("\r\n"), count=1)
    if line.startswith("Start buffering "):  # one per step: chatter, before the announcement
        return None
    if line.startswith("error: "):
        return ErrorLine(line[len("error: ") :])
    if m := _STEP_START.match(line):
        return StepStarted(int(m["version"]), _direction(m["direction"]), m["title"])
    if m := _STEP_FINISH_VERBOSE.match(line):
        # "ran" is the step's own time; "read" counts from when all files started buffering.
        return StepFinished(int(m["version"]), _direction(m["direction"]), m["title"], go_duration_ms(m["ran"]))
    if m := _STEP_FINISH_PLAIN.match(line):
        # Without -verbose the figure is cumulative since the run began; the wrapper always passes -verbose.
        try:
            took = go_duration_ms(m["took"])
        except ValueError:
            return None
        return StepFinished(int(m["version"]), _direction(m["direction"]), m["title"], took)
    if line == "no change":
        return NoChange()
    if line.startswith("Stopping after this running migration"):
        return Stopping()
    return None


def _direction(letter: str) -> str:
    return "up" if letter == "u" else "down"


# -- errors ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MigrateFailure:
    # migration_failed | lock_timeout: the step's body failed (the server answered its statement with an error);
    # no_answer: the body's statement got no answer (a lost connection: it may have committed);
    # set_version: golang-migrate's own version update failed; version_commit: its commit failed (did it commit?);
    # migration_lock | dirty | missing_version | connect | source | other
    kind: str
    message: str  # one line, no SQL file dump
    sql_line: int | None = None
    version: int | None = None


_MIGRATION_FAILED = re.compile(r"^migration failed: (?P<msg>.*?) in line (?P<line>\d+): ", re.S)
_MIGRATION_FAILED_BARE = re.compile(r"^migration failed in line (?P<line>\d+): ", re.S)
_DIRTY = re.compile(r"^Dirty database version (?P<version>-?\d+)\. Fix and force version\.")
_MISSING = re.compile(r"^no migration found for version (?P<version>\d+)")
# The postgres driver's SetVersion: TRUNCATE then INSERT on its table, errors as "<cause> in line 0: <statement>".
_SET_VERSION = re.compile(r"^(?P<cause>.*?) in line 0: (?:TRUNCATE|INSERT INTO) \"", re.S)
_VERSION_TX = re.compile(r"^transaction (?:start|commit) failed in line 0: ", re.S)


def parse_error(text: str) -> MigrateFailure:
    """Turn golang-migrate's error text (everything after `error: `) into one clear line."""
    text = text.strip()
    if text.removeprefix("failed to open database: ").startswith("try lock failed"):
        # With lock_timeout in the URL, pg_advisory_lock gives up instead of waiting forever (4.19 wraps the error).
        return MigrateFailure("migration_lock", "another session holds golang-migrate's advisory lock")
    if m := _MIGRATION_FAILED.match(text) or _MIGRATION_FAILED_BARE.match(text):
        # The file's whole text sits between "in line N: " and the last "(details: …)"; drop it.
        # The file text may itself contain "(details: ", so the driver's error is the last one.
        cut = text.rfind("(details: ")
        # Its first line up to the last ")"; anything after is a second error (e.g. the unlock that failed too).
        tail = text[cut + len("(details: ") :].split("\n", 1)[0] if cut >= 0 else ""
        reason = tail[: tail.rfind(")")] if ")" in tail else tail
        reason = reason.removeprefix("pq: ")
        message = m.groupdict().get("msg") or reason or "migration failed"
        if reason and reason not in message:
            message = f"{message} ({reason})"
        sql_line = int(m["line"]) or None
        kind = "lock_timeout" if "due to lock timeout" in reason else "migration_failed"
        if m.re is _MIGRATION_FAILED_BARE:
            # Not the server's error answer (that reads "migration failed: <message>") but the driver's own, e.g.
            # "bad connection": the statement may have committed before the answer was lost.
            kind = "no_answer"
        return MigrateFailure(kind, _one_line(message), sql_line=sql_line)
    if m := _SET_VERSION.match(text):
        return MigrateFailure("set_version", _one_line(
            f"golang-migrate could not record the version: {m['cause'].removeprefix('pq: ')}"))
    if _VERSION_TX.match(text):
        return MigrateFailure("version_commit", _one_line(f"golang-migrate's version update failed: {text}"))
    if m := _DIRTY.match(text):
        return MigrateFailure("dirty", f"database is dirty at version {m['version']}", version=int(m["version"]))
    if m := _MISSING.match(text):
        return MigrateFailure(
            "missing_version",
            f"the database is at version {m['version']}, which is not among the migration files",
            version=int(m["version"]),
        )
    if text.startswith("failed to open database"):
        return MigrateFailure("connect", _one_line(text))
    if text.startswith("failed to open source"):
        return MigrateFailure("source", _one_line(text))
    return MigrateFailure("other", _one_line(text))


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "…"
