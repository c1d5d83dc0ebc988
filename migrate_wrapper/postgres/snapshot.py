"""What the post-checks compare: a snapshot of the target's tables (rows, columns, indexes), taken before and after
an apply or rollback on a psycopg connection (autocommit). checks/post.py compares two of them.

Which tables: ordinary and partitioned tables (relkind r, p) outside pg_catalog, information_schema, pg_toast*,
temporary schemas and `migration_meta` (the wrapper's own audit schema), minus the `exclude` set
("schema.table"; golang-migrate's own table by default).

Exact or estimated, decided from the catalog without reading any table:

* ``pages`` is the table's current file size (``pg_relation_size``, a stat of the file) in blocks.
* Its likely row count is the planner's own extrapolation ``reltuples / relpages * pages`` when the table has
  been analysed or vacuumed (reltuples >= 0 and relpages > 0); otherwise it is the most the file could hold,
  ``pages * MaxHeapTuplesPerPage`` (291 for 8 kB blocks: a heap row takes at least a 24-byte header and a
  4-byte line pointer). A never-analysed table is therefore counted only when it is provably small.
* Likely rows <= ``exact_threshold_rows``: exact ``count(*)`` (an empty file is 0 without any query).
  Above it: an estimate, ``exact=False``, and the table is never scanned. The estimate is, in order of
  preference, ``reltuples / relpages * pages``; ``n_live_tup`` from the cumulative statistics (inserts minus
  deletes, kept even without ANALYZE); ``pages`` times the average rows per page of the database's analysed
  tables; ``pages`` times 81 (rows of about 100 bytes). `TableCount.method` says which.
* A table whose size cannot be read without waiting (someone holds or awaits ACCESS EXCLUSIVE on it) is
  estimated from reltuples / n_live_tup alone.
* A partitioned table has no rows of its own: its count is the sum of its leaf partitions' counts (so its data
  is read once, not twice), exact when every leaf's is. Inheritance parents are counted ``FROM ONLY``.

Exact counts are batched: one ``UNION ALL`` statement of ``select oid, count(*) from only <table>`` per
`COUNT_CHUNK` tables, each in its own short transaction with a lock timeout and no parallel workers. With
`connect_more` and at least two chunks, a second connection counts every other chunk at the same time (the server
then uses two cores, and each backend loads only half the tables into its catalog cache). A chunk
that fails (a lock not granted within `lock_timeout_ms`, a table dropped meanwhile, no SELECT privilege) is
retried table by table; a table that still cannot be counted gets an estimate (or is left out when it no longer
exists).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrate_wrapper.postgres import ledger

if TYPE_CHECKING:
    import psycopg

AUDIT_SCHEMA = ledger.SCHEMA
DEFAULT_EXCLUDE = frozenset({"public.schema_migrations"})
DEFAULT_THRESHOLD_ROWS = 100_000
COUNT_CHUNK = 250  # tables per count statement: few round trips, few locks held at once
DEFAULT_LOCK_TIMEOUT_MS = 5_000
PAGE_HEADER_BYTES = 24  # SizeOfPageHeaderData
MIN_ROW_BYTES = 24 + 4  # MAXALIGN(SizeofHeapTupleHeader) + sizeof(ItemIdData)
ASSUMED_ROW_BYTES = 100 + 4  # last-resort width when nothing in the catalog says how dense a table is

_TABLES_SQL = r"""
select c.oid::int8, n.nspname, c.relname, c.relkind::text, c.reltuples::float8, c.relpages::int8,
       {size},
       coalesce(pg_catalog.pg_stat_get_live_tuples(c.oid), 0)::int8
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'f')
  and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\_toast%'
  and n.nspname not like 'pg\_temp\_%'
"""

# pg_relation_size opens the table (AccessShareLock): skip tables someone holds or awaits ACCESS EXCLUSIVE on.
_FILE_SIZE = """case when c.oid in (
    select l.relation from pg_catalog.pg_locks l
    where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock' and l.pid <> pg_catalog.pg_backend_pid()
      and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())
  ) then null else pg_catalog.pg_relation_size(c.oid) end::int8"""
_NO_SIZE = "null::int8"

_LEAVES_SQL = """
select p.oid::int8, t.relid::oid::int8
from pg_catalog.pg_class p
cross join lateral pg_catalog.pg_partition_tree(p.oid) t
where p.relkind = 'p' and p.oid = any(%s::oid[]) and t.isleaf
"""

_COLUMNS_SQL = """
select a.attrelid::int8, pg_catalog.quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
from pg_catalog.pg_attribute a
where a.attrelid = any(%s::oid[]) and a.attnum > 0 and not a.attisdropped
"""

_INDEXES_SQL = """
select i.indrelid::int8, ic.relname
from pg_catalog.pg_index i
join pg_catalog.pg_class ic on ic.oid = i.indexrelid
where i.indrelid = any(%s::oid[])
"""


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int
    exact: bool
    # How `rows` was obtained: count | empty | partitions | reltuples | n_live_tup | pages
    method: str = "count"
    partitioned: bool = False  # a partitioned table: its rows are also its partitions' rows


@dataclass(frozen=True)
class Snapshot:
    counts: dict[str, TableCount]  # "schema.table" -> count
    columns: dict[str, set[str]]  # "schema.table" -> {"column type"} (column name as quote_ident gives it)
    indexes: set[str]  # "schema.index on schema.table"


@dataclass(frozen=True)
class _Rel:
    oid: int
    schema: str
    name: str
    kind: str
    reltuples: float
    relpages: int
    size: int | None  # bytes of the main fork; None: unknown (locked exclusively by someone, or just dropped)
    live_tuples: int

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"


# --- snapshot ---------------------------------------------------------------------------------


def snapshot(
    conn: psycopg.Connection,
    *,
    exact_threshold_rows: int = DEFAULT_THRESHOLD_ROWS,
    exclude: set[str] | frozenset[str] = DEFAULT_EXCLUDE,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    connect_more: Callable[[], psycopg.Connection] | None = None,
) -> Snapshot:
    """Row counts, columns and indexes of every user table (see the module docstring for the rules).

    `connect_more` opens another connection to the same database, for counting in parallel; None: one connection."""
    import psycopg

    block_size = int(conn.execute("select pg_catalog.current_setting('block_size')").fetchone()[0])
    try:
        with _short_transaction(conn, lock_timeout_ms):
            rows = conn.execute(_TABLES_SQL.format(size=_FILE_SIZE)).fetchall()
    except psycopg.errors.LockNotAvailable:  # an exclusive lock taken since pg_locks was read: no sizes at all
        rows = conn.execute(_TABLES_SQL.format(size=_NO_SIZE)).fetchall()
    rels = {row[0]: _Rel(*row) for row in rows}
    included = [
        r for r in rels.values() if r.kind in ("r", "p") and r.schema != AUDIT_SCHEMA and r.key not in exclude
    ]
    parents = [r.oid for r in included if r.kind == "p"]
    leaves: dict[int, list[int]] = {oid: [] for oid in parents}
    if parents:
        for parent, leaf in conn.execute(_LEAVES_SQL, (parents,)).fetchall():
            leaves[parent].append(leaf)

    # Every heap that must be counted: the included tables and the leaves of included partitioned tables.
    heaps = {r.oid for r in included if r.kind == "r"}
    heaps.update(leaf for oids in leaves.values() for leaf in oids if leaf in rels)
    estimator = _Estimator(rels.values(), block_size)
    counts: dict[int, TableCount] = {}
    to_count: list[_Rel] = []
    for oid in sorted(heaps):
        rel = rels[oid]
        if rel.kind != "r" or rel.size is None:  # a foreign partition (never read remotely), or size unknown
            counts[oid] = estimator.estimate(rel)
        elif rel.size == 0:
            counts[oid] = TableCount(rel.schema, rel.name, 0, True, "empty")
        elif estimator.likely_rows(rel) > exact_threshold_rows:
            counts[oid] = estimator.estimate(rel)
        else:
            to_count.append(rel)
    counted = _count_exact_parallel(conn, connect_more, to_count, lock_timeout_ms)
    for rel in to_count:
        if rel.oid in counted:
            rows = counted[rel.oid]
            counts[rel.oid] = estimator.estimate(rel) if rows is None else TableCount(rel.schema, rel.name, rows, True)
        # else: dropped while we were counting; leave it out

    result: dict[str, TableCount] = {}
    for rel in sorted(included, key=lambda r: r.key):
        if rel.kind == "p":
            parts = [counts[leaf] for leaf in leaves[rel.oid] if leaf in counts]
            result[rel.key] = TableCount(
                rel.schema, rel.name, sum(p.rows for p in parts), all(p.exact for p in parts), "partitions", True
            )
        elif rel.oid in counts:
            result[rel.key] = counts[rel.oid]

    kept = [r for r in included if r.key in result]
    oids = [r.oid for r in kept]
    by_oid = {r.oid: r.key for r in kept}
    columns: dict[str, set[str]] = {r.key: set() for r in kept}
    indexes: set[str] = set()
    if oids:
        for oid, column in conn.execute(_COLUMNS_SQL, (oids,)).fetchall():
            columns[by_oid[oid]].add(column)
        for oid, index in conn.execute(_INDEXES_SQL, (oids,)).fetchall():
            rel = rels[oid]
            indexes.add(f"{rel.schema}.{index} on {rel.key}")
    return Snapshot(result, columns, indexes)


class _Estimator:
    """Row estimates from the catalog alone."""

    def __init__(self, rels, block_size: int) -> None:
        self.block_size = block_size
        self.max_per_page = (block_size - PAGE_HEADER_BYTES) // MIN_ROW_BYTES
        analysed = [r for r in rels if r.kind == "r" and r.reltuples >= 0 and r.relpages > 0]
        pages = sum(r.relpages for r in analysed)
        self.db_density = sum(r.reltuples for r in analysed) / pages if pages else None
        self.assumed_density = (block_size - PAGE_HEADER_BYTES) // ASSUMED_ROW_BYTES

    def pages(self, rel: _Rel) -> int | None:
        return None if rel.size is None else math.ceil(rel.size / self.block_size)

    def likely_rows(self, rel: _Rel) -> float:
        """What the planner would assume when analysed; otherwise the most the file can physically hold."""
        pages = self.pages(rel)
        if pages is None:
            return math.inf
        if rel.reltuples >= 0 and rel.relpages > 0:
            return rel.reltuples / rel.relpages * pages
        return pages * self.max_per_page

    def estimate(self, rel: _Rel) -> TableCount:
        pages = self.pages(rel)
        if rel.reltuples >= 0 and rel.relpages > 0 and pages is not None:
            rows, method = rel.reltuples / rel.relpages * pages, "reltuples"
        elif rel.reltuples >= 0 and (pages is None or pages == 0):
            rows, method = rel.reltuples, "reltuples"
        elif rel.live_tuples > 0 or pages is None:
            rows, method = rel.live_tuples, "n_live_tup"
        elif self.db_density is not None:
            rows, method = pages * self.db_density, "pages"
        else:
            rows, method = pages * self.assumed_density, "pages"
        return TableCount(rel.schema, rel.name, int(round(rows)), False, method)


def _count_exact_parallel(
    conn: psycopg.Connection, connect_more: Callable[[], psycopg.Connection] | None, rels: list[_Rel],
    lock_timeout_ms: int,
) -> dict[int, int | None]:
    """`_count_exact`, with every other chunk on a second connection when there are two chunks or more."""
    if connect_more is None or len(rels) <= COUNT_CHUNK:
        return _count_exact(conn, rels, lock_timeout_ms)
    from migrate_wrapper.errors import PreCheckFailed

    try:
        helper = connect_more()
    except PreCheckFailed:  # e.g. connection slots used up: count on the one connection we have
        return _count_exact(conn, rels, lock_timeout_ms)
    chunks = [rels[start : start + COUNT_CHUNK] for start in range(0, len(rels), COUNT_CHUNK)]
    theirs = [rel for chunk in chunks[1::2] for rel in chunk]
    outcome: dict[str, object] = {}

    def count_theirs() -> None:
        try:
            outcome["counted"] = _count_exact(helper, theirs, lock_timeout_ms)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=count_theirs, name="post-check-count", daemon=True)
    try:
        worker.start()
        out = _count_exact(conn, [rel for chunk in chunks[0::2] for rel in chunk], lock_timeout_ms)
        worker.join()
    finally:
        if worker.is_alive():  # the main thread was interrupted: end the helper's statement with its connection
            helper.cancel_safe()
            worker.join(5.0)
        helper.close()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    out.update(outcome["counted"])  # type: ignore[arg-type]
    return out


def _count_exact(conn: psycopg.Connection, rels: list[_Rel], lock_timeout_ms: int) -> dict[int, int | None]:
    """oid -> count(*); None: could not be counted (lock, privilege); missing: the table no longer exists."""
    import psycopg

    retry = (psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable, psycopg.errors.InsufficientPrivilege)
    out: dict[int, int | None] = {}
    for start in range(0, len(rels), COUNT_CHUNK):
        chunk = rels[start : start + COUNT_CHUNK]
        try:
            out.update(_count_chunk(conn, chunk, lock_timeout_ms))
        except retry:
            for rel in chunk:  # find the culprit(s); the rest still get exact counts
                try:
                    out.update(_count_chunk(conn, [rel], lock_timeout_ms))
                except psycopg.errors.UndefinedTable:
                    pass
                except retry:
                    out[rel.oid] = None
    return out


def _count_chunk(conn: psycopg.Connection, rels: list[_Rel], lock_timeout_ms: int) -> dict[int, int]:
    from psycopg import sql

    # Identifiers quoted by psycopg; the oid is an int. Rendering to bytes directly is ~8x faster than composing
    # sql.SQL(...).format(...) objects, which matters at thousands of tables.
    query = b" union all ".join(
        b"select %d::int8, count(*) from only %s" % (int(rel.oid), sql.Identifier(rel.schema, rel.name).as_bytes(conn))
        for rel in rels
    )
    with _short_transaction(conn, lock_timeout_ms):
        return dict(conn.execute(query).fetchall())


@contextmanager
def _short_transaction(conn: psycopg.Connection, lock_timeout_ms: int) -> Iterator[None]:
    """A transaction that gives up on a lock after lock_timeout_ms (0: waits) and plans no parallel workers."""
    with conn.transaction():
        # Parallel workers would each open and lock every table of a chunk: several times slower for small ones.
        conn.execute(
            "select pg_catalog.set_config('lock_timeout', %s, true),"
            " pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)",
            (f"{max(int(lock_timeout_ms), 0)}ms",),
        )
        yield
