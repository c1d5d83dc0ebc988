"""What a golang-migrate step really did, proved from the database — never inferred.

golang-migrate marks a step dirty, runs its file as one statement, then marks it clean. When it is stopped, killed or
fails in between, whether the file's transaction committed cannot be read from the dirty flag (PostgreSQL even
finishes and commits the statement of a client that died). The proof comes from, strongest first:

- golang-migrate's output. Its "Read and execute" line is written before the file is sent, so without it the body
  never ran. A failed body ("migration failed …") means the server rolled that statement back. A failed version
  update after the body means the body had returned: it committed.
- A Witness watching golang-migrate's backend (the holder of its advisory lock) while a step runs: the body's
  transaction id, and golang-migrate seen past the body (recording the version).
- pg_xact_status(xid) once that backend is gone: committed or aborted.

Anything else is UNKNOWN: the caller leaves the database dirty and says what to look at. A file that is not atomic
(its own COMMIT, CONCURRENTLY, CALL, …) can be partly applied, so for it only "never ran" is ever proved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.postgres import locks
from migrate_wrapper.golang_migrate.output import MigrateFailure
from migrate_wrapper.model.evidence import COMMITTED, NOT_RUN, ROLLED_BACK, UNKNOWN, StepEvidence, Verdict

if TYPE_CHECKING:
    import psycopg

    from migrate_wrapper.config.dburl import DatabaseUrl

BODY_FAILED = ("migration_failed", "lock_timeout")  # MigrateFailure kinds: the server answered the body with an error
VERSION_FAILED = ("set_version", "version_commit")  # golang-migrate's own version update failed (after the body)


def not_atomic(url: DatabaseUrl, path: Path | None) -> str | None:
    """Why a failed or interrupted run of this file may have left part of it; None when it is all or nothing."""
    from migrate_wrapper.sql import sqlinfo

    from migrate_wrapper.model.migrations import too_big

    if path is None:
        return "its file is not in this checkout, so what it does cannot be judged"
    if too_big(path):
        return "it is too large to analyse, so what it does cannot be judged"
    info = sqlinfo.analyse(path.read_text(encoding="utf-8", errors="replace"))
    if (url.param("x-multi-statement") or "").lower() in ("1", "t", "true") and info.statements > 1:
        return "x-multi-statement runs its statements one by one"
    if info.parse_error:
        return "it does not parse, so what it does cannot be judged"
    if info.transaction_control:
        return "it has its own BEGIN/COMMIT"
    if info.concurrently:
        return "CONCURRENTLY runs outside a transaction"
    if info.commits_itself:
        return f"it has {info.commits_itself}"
    return None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'  # lib/pq's QuoteIdentifier


def bookkeeping(schema: str, table: str) -> frozenset[str]:
    """The statements of golang-migrate's version update (SetVersion), seen in pg_stat_activity.query. Seen at work
    (not idle: an idle COMMIT may still be the dirty mark's, before the body was sent) after a step's start line,
    they are the clean mark's: the body had returned. The unlock is not among them: it follows a failed body too."""
    name = f"{_quote(schema)}.{_quote(table)}"
    return frozenset({f"TRUNCATE {name}", f"INSERT INTO {name} (version, dirty) VALUES ($1, $2)", "BEGIN", "COMMIT"})


# pg_stat_activity.query holds at most track_activity_query_size bytes (1 MiB at the most): the start of a file is
# all a look can be compared with, so no more of a file is ever read for it.
QUERY_TEXT_MAX = 1024 * 1024

_SIGHTING = f"""
select a.pid, a.backend_start::text, a.backend_xid::text, coalesce(a.query, ''),
       pg_snapshot_xmax(pg_current_snapshot())::text, coalesce(a.state, '')
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where {locks.MIGRATE_LOCK_HELD}
"""


def mark_xmin(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    """The transaction that wrote golang-migrate's current version row: ties evidence to this very dirty mark."""
    from psycopg import sql

    row = conn.execute(sql.SQL("select xmin::text, pg_snapshot_xmax(pg_current_snapshot())::text from {}.{} limit 1")
                       .format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
    return full_xid(int(row[0]), int(row[1])) if row else None


def same_mark(step: StepEvidence, current_mark: int | None) -> bool:
    """Whether evidence recorded by a run is about the dirty mark the database shows now, not an older one of the
    same version: the run recorded the mark's writer, or saw a body transaction that began after it."""
    if current_mark is None:
        return False
    if step.mark_xmin is not None:
        return step.mark_xmin == current_mark
    return step.xid is not None and current_mark < step.xid


def full_xid(xid32: int, xmax: int) -> int:
    """pg_stat_activity shows a 32-bit xid; pg_xact_status takes the 64-bit one: take the epoch of a nearby xid8."""
    full = (xmax & ~0xFFFFFFFF) | xid32
    if full > xmax + 2**31:
        full -= 2**32
    elif full + 2**31 < xmax:
        full += 2**32
    return full


class Witness:
    """Watches golang-migrate's backend while a step runs, on the wrapper's own connection (idle meanwhile).

    A step is first looked at once it has run for INTERVAL, so fast steps cost nothing. Each look is attributed to
    the step whose start line had been read before the look was made: golang-migrate is then in that step or later,
    and only the last step is ever judged. A look counts as that step's body only when the backend's query is the
    start of its file, and as "past the body" only for golang-migrate's own version update at work.
    """

    INTERVAL = 0.1

    def __init__(self, conn: psycopg.Connection, lock_key: int, marks: frozenset[str],
                 on_change: Callable[[StepEvidence], None]) -> None:
        self.conn, self.lock_key, self.marks, self.on_change = conn, lock_key, marks, on_change
        self._step: tuple[StepEvidence, float] | None = None  # the step being watched, and when it started
        self._body: tuple[str, str] | None = None  # (path, start of the file) of the step being watched
        self._running = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Witness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # a look still under way after this changes nothing (see look's `keep`)
        self._running.set()
        self._thread.join(timeout=5)

    def watch(self, step: StepEvidence) -> None:
        self._step = (step, time.monotonic())
        self._running.set()

    def idle(self) -> None:
        self._running.clear()
        self._step = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._running.wait(timeout=1.0):
                continue
            watched = self._step
            if watched is None:
                continue
            step, since = watched
            early = since + self.INTERVAL - time.monotonic()
            if early > 0:
                self._stop.wait(early)
                continue
            try:
                learned = look(self.conn, self.lock_key, self.marks, step, self._text(step),
                               keep=lambda: not self._stop.is_set())
            except Exception:  # noqa: BLE001 - a lost connection ends the watch; the verdict says what is missing
                return
            if learned:
                self.on_change(step)
            self._stop.wait(self.INTERVAL)

    def _text(self, step: StepEvidence) -> str:
        if self._body is None or self._body[0] != step.path:
            self._body = (step.path or "", body_start(step))
        return self._body[1]


def body_start(step: StepEvidence) -> str:
    """The start of the file exactly as golang-migrate sends it (bytes as they are: CRLF stays CRLF)."""
    if not step.path:
        return ""
    with open(step.path, "rb") as file:
        return file.read(QUERY_TEXT_MAX).decode("utf-8", errors="ignore")


def look(conn: psycopg.Connection, lock_key: int, marks: frozenset[str], step: StepEvidence, body: str, *,
         keep: Callable[[], bool] = lambda: True) -> bool:
    """One look at golang-migrate's backend on behalf of `step`; True when it taught something new. The backend is
    the step's own only when it is the one already seen for this step (pid and start time), or, the first time,
    when its query is the start of the step's file; once known it is never replaced by another."""
    row = conn.execute(_SIGHTING, (lock_key,)).fetchone()
    if row is None or not keep():
        return False
    pid, backend_start, xid32, query, xmax, state = row
    if step.pid is not None and (step.pid, step.backend_start) != (pid, backend_start):
        return False  # another session has golang-migrate's lock now: nothing it does is this step's
    in_body = bool(query) and body.startswith(query)
    is_mark = query in marks and state != "idle"
    if in_body == is_mark:  # neither, or a file that is itself one of golang-migrate's statements: says nothing
        return False
    if step.pid is None and not in_body:
        return False  # a backend first seen doing bookkeeping could be anyone's
    changed = step.pid is None
    step.pid, step.backend_start = pid, backend_start
    if is_mark and not step.body_done:
        step.body_done = changed = True
    elif in_body and xid32 is not None and step.xid is None:
        step.xid = full_xid(int(xid32), int(xmax))
        changed = True
    return changed


def settle(conn: psycopg.Connection, step: StepEvidence, failure: MigrateFailure | None, *, partial: str | None,
           wait: float, lock_key: int | None = None, marks: frozenset[str] = frozenset()) -> Verdict:
    """The verdict on a step that golang-migrate left dirty (the caller checked the dirty mark is this step's).
    `partial` says why the file may be half-applied (proof.not_atomic), None when it is all or nothing. With
    `lock_key`, a backend that outlived golang-migrate is looked at once more first (the server may not have
    noticed yet that its client is gone): its transaction id is still there to read."""
    if not step.started:
        return Verdict(NOT_RUN, "golang-migrate never sent its body (its 'Read and execute' line, written first, "
                                "never came)")
    if failure is not None and failure.kind in BODY_FAILED:
        if partial:
            return Verdict(UNKNOWN, f"its body failed ({failure.message}), but {partial}: part of it may be applied")
        return Verdict(ROLLED_BACK, f"the server rejected its body ({failure.message}), so its one transaction "
                                    "rolled back")
    if failure is not None and failure.kind in VERSION_FAILED or step.body_done:
        how = "golang-migrate's version update after it failed" if failure is not None and \
            failure.kind in VERSION_FAILED else "golang-migrate was seen recording the version after it"
        if partial:
            return Verdict(UNKNOWN, f"its body ran to its end ({how}), but {partial}")
        return Verdict(COMMITTED, f"its body had returned ({how}), so its one transaction committed")
    if lock_key is not None and step.xid is None and not step.body_done:
        look(conn, lock_key, marks, step, body_start(step))
        if step.body_done:
            return settle(conn, step, failure, partial=partial, wait=wait)
    gone = _backend_gone(conn, step, wait)
    if not gone:
        return Verdict(UNKNOWN, f"its statement is still running on the server (pid {step.pid})")
    if step.xid is None:
        return Verdict(UNKNOWN, "its transaction was never seen (it had written nothing yet when last looked at, "
                                f"or ran for less than {Witness.INTERVAL:g}s)")
    try:
        status = conn.execute("select pg_xact_status(%s::text::xid8)", (str(step.xid),)).fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - e.g. "in the future" after a failover to a replica that lacks it
        return Verdict(UNKNOWN, f"the status of its transaction {step.xid} cannot be read ({type(exc).__name__})")
    if status in ("committed", "aborted") and partial:
        return Verdict(UNKNOWN, f"its transaction {step.xid} {status}, but {partial}")
    if status == "committed":
        return Verdict(COMMITTED, f"its transaction {step.xid} committed (pg_xact_status)")
    if status == "aborted":
        return Verdict(ROLLED_BACK, f"its transaction {step.xid} aborted (pg_xact_status)")
    return Verdict(UNKNOWN, f"pg_xact_status of its transaction {step.xid} is {status or 'no longer known'}")


def _backend_gone(conn: psycopg.Connection, step: StepEvidence, wait: float) -> bool:
    """golang-migrate has exited; its backend may still run the body for a client that is gone. Wait `wait` seconds
    for the server to notice, then end that backend (and only it: pid and start time), and wait again."""
    if step.pid is None:
        return True  # never seen: there is no transaction to judge, and no backend known to be ours to end
    terminated = False
    deadline = time.monotonic() + wait
    while True:
        alive = conn.execute("select 1 from pg_stat_activity where pid = %s and backend_start::text = %s",
                             (step.pid, step.backend_start)).fetchone()
        if alive is None:
            return True
        if time.monotonic() >= deadline:
            if terminated:
                return False
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where pid = %s "
                         "and backend_start::text = %s", (step.pid, step.backend_start))
            terminated, deadline = True, time.monotonic() + 5.0
        time.sleep(0.05)
