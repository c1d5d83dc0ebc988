"""The advisory locks a run meets: golang-migrate's, and the wrapper's run lock.

golang-migrate's lock: a single bigint key (classid 0, objsubid 1) derived from the migrations table and the URL's
path; its holder is golang-migrate's own session. The pre-checks read who holds it; the engine cancels that holder's
statement when a run must stop.

The run lock: one wrapper run at a time on a database's migrations table, for the run's whole length. golang-migrate's
own advisory lock covers one golang-migrate call. The wrapper's plan, pre-checks, golang-migrate and
post-checks must not interleave with another run's, or one run applies or reverts what the other just planned. The
wrapper holds a session advisory lock of its own on its connection for the whole run: in the two-integer key space
(pg_locks.objsubid = 2), so it never collides with golang-migrate's single-key lock on the same table.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from migrate_wrapper.errors import PreCheckFailed

if TYPE_CHECKING:
    import psycopg

    from migrate_wrapper.config.dburl import DatabaseUrl

ADVISORY_LOCK_SALT = 1486364155  # golang-migrate's database.advisoryLockIDSalt
# pg_locks `l` rows of golang-migrate's advisory lock in this database, granted. The key (%s) is advisory_lock_key's.
MIGRATE_LOCK_HELD = """l.locktype = 'advisory' and l.classid = 0 and l.objid = %s and l.objsubid = 1 and l.granted
  and l.database = (select oid from pg_database where datname = current_database())"""


def advisory_lock_key(url: DatabaseUrl, schema: str, table: str) -> int:
    """golang-migrate's lock id: CRC32-IEEE of schema, table and the URL's path, times its salt, mod 2^32."""
    dbpath = urlsplit(url.for_migrate()).path  # the path as golang-migrate sees it, leading "/" included
    raw = "\0".join([schema, table, unquote(dbpath)]).encode()
    return (zlib.crc32(raw) * ADVISORY_LOCK_SALT) % 2**32


def cancel_migrate_lock_holder(conn: psycopg.Connection, key: int) -> int | None:
    """Cancel the statement of the backend holding golang-migrate's lock (golang-migrate's own session); its pid."""
    row = conn.execute(f"select l.pid, pg_cancel_backend(l.pid) from pg_locks l where {MIGRATE_LOCK_HELD}",
                       (key,)).fetchone()
    return int(row[0]) if row else None


# -- the wrapper's run lock -------------------------------------------------------------------------------------------

KEY_CLASS = 0x6D77  # "mw"


def _key(migrate_key: int) -> int:
    return migrate_key - 2**32 if migrate_key >= 2**31 else migrate_key  # golang-migrate's key as a signed int4


def holder(conn: psycopg.Connection, migrate_key: int) -> str | None:
    """Who holds the run lock (another wrapper run), as one phrase; None when nobody does."""
    row = conn.execute(
        """
        select a.pid, coalesce(host(a.client_addr), 'local socket'),
               extract(epoch from now() - coalesce(a.backend_start, now()))::int
        from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.classid = %s and l.objid = (%s::int)::oid and l.objsubid = 2 and l.granted
          and l.database = (select oid from pg_database where datname = current_database())
          and l.pid <> pg_backend_pid()
        """,
        (KEY_CLASS, _key(migrate_key)),
    ).fetchone()
    if row is None:
        return None
    pid, client, seconds = row
    return f"pid {pid}, client {client}, for {seconds}s"


def acquire(conn: psycopg.Connection, migrate_key: int, *, running: str | None) -> None:
    """Take the run lock or fail at once (never wait): exit 3, nothing done. `running` names the ledger's running
    row, for the message."""
    got = conn.execute("select pg_try_advisory_lock(%s, %s)", (KEY_CLASS, _key(migrate_key))).fetchone()[0]
    if got:
        return
    who = holder(conn, migrate_key) or "a session that has just ended"
    run = f": {running}" if running else ""
    raise PreCheckFailed(
        "migration_lock",
        f"another migrate-wrapper run is in progress on this database ({who}){run}",
        hint="wait for it to finish (status shows it), then check status and run again",
    )
