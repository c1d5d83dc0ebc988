"""Post-checks (row counts and schema summary) against a real PostgreSQL: snapshots before and after a change."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from dataclasses import asdict

from migrate_wrapper.checks import post
from migrate_wrapper.postgres import snapshot as snapshots
from migrate_wrapper.output import report

pytestmark = pytest.mark.integration


def row_data(result) -> dict:
    """The row-count check's typed result, as plain data: what the JSON log records carry."""
    return {**asdict(result.rows), "deltas": [asdict(d) for d in result.rows.deltas]}


@pytest.fixture
def conn(pg):
    """An autocommit connection to a fresh database of this test's own, dropped afterwards."""
    name = f"post_{uuid.uuid4().hex[:10]}"
    pg.psql("postgres", f"create database {name}")
    connection = psycopg.connect(pg.url(name), autocommit=True)
    yield connection
    connection.close()
    pg.psql("postgres", f"drop database if exists {name} with (force)")


def run(conn, *statements: str) -> None:
    for statement in statements:
        conn.execute(statement)


def make_table(conn, name: str, rows: int, *, extra: str = "") -> None:
    run(conn, f"create table {name} (id int primary key, note text{extra})",
        f"insert into {name} select g, 'row ' || g from generate_series(1, {rows}) g")


def by_table(result) -> dict[str, dict]:
    return {d["table"]: d for d in row_data(result)["deltas"]}


# --- row counts -------------------------------------------------------------------------------


def test_delete_is_flagged_warn_and_fail_on_row_loss(conn):
    make_table(conn, "orders", 10)
    make_table(conn, "customers", 4)
    before = snapshots.snapshot(conn)
    assert before.counts["public.orders"] == snapshots.TableCount("public", "orders", 10, True)
    run(conn, "delete from orders where id <= 3")
    after = snapshots.snapshot(conn)

    warned = post.row_counts(before, after, fail_on_row_loss=False)
    assert warned.phase == "post" and warned.name == "row_counts" and warned.status == "warn"
    assert row_data(warned)["deltas"] == [
        {"table": "public.orders", "before": 10, "after": 7, "delta": -3, "exact": True, "status": "lost_rows",
         "flagged": True, "partitioned": False},
    ]
    assert (row_data(warned)["total_delta"], row_data(warned)["rows_changed"]) == (-3, 3)
    assert "1 lost rows" in warned.reason and "-3" in warned.reason
    assert report.render_deltas(warned) == ["  public.orders  10 → 7  (-3)  LOST ROWS"]

    failed = post.row_counts(before, after, fail_on_row_loss=True)
    assert failed.status == "fail" and row_data(failed) == row_data(warned)


def test_dropped_table_counts_as_lost_rows(conn):
    make_table(conn, "legacy", 5)
    make_table(conn, "empty_legacy", 0)
    make_table(conn, "kept", 2)
    before = snapshots.snapshot(conn)
    run(conn, "drop table legacy", "drop table empty_legacy")
    result = post.row_counts(before, snapshots.snapshot(conn), fail_on_row_loss=True)

    assert result.status == "fail"
    deltas = by_table(result)
    assert set(deltas) == {"public.legacy", "public.empty_legacy"}  # an empty table dropped is still flagged
    assert deltas["public.legacy"] == {"table": "public.legacy", "before": 5, "after": None, "delta": -5,
                                       "exact": True, "status": "dropped", "flagged": True, "partitioned": False}
    assert deltas["public.empty_legacy"]["status"] == "dropped" and deltas["public.empty_legacy"]["flagged"]
    assert row_data(result)["total_delta"] == -5
    assert "2 dropped" in result.reason
    assert report.render_deltas(result)[0] == "  public.legacy        5 → —  (-5)  DROPPED"


def test_new_tables_and_inserts_are_not_a_loss(conn):
    make_table(conn, "orders", 3)
    before = snapshots.snapshot(conn)
    make_table(conn, "invoices", 4)
    make_table(conn, "empty_new", 0)
    run(conn, "insert into orders values (10, 'x'), (11, 'y')")
    result = post.row_counts(before, snapshots.snapshot(conn), fail_on_row_loss=True)

    assert result.status == "ok", result
    deltas = by_table(result)
    assert deltas["public.invoices"] == {"table": "public.invoices", "before": None, "after": 4, "delta": 4,
                                               "exact": True, "status": "new", "flagged": False,
                                               "partitioned": False}
    assert deltas["public.orders"]["status"] == "changed" and deltas["public.orders"]["delta"] == 2
    assert deltas["public.empty_new"]["status"] == "new"
    assert (row_data(result)["total_delta"], row_data(result)["rows_changed"]) == (6, 6)
    lines = report.render_deltas(result)
    assert lines[0].startswith("  public.invoices") and lines[0].endswith("(+4)  new table")
    assert lines[1] == "  public.orders     3 → 5  (+2)"


def test_unchanged_tables_are_not_listed(conn):
    make_table(conn, "orders", 3)
    before = snapshots.snapshot(conn)
    run(conn, "update orders set note = 'changed'")  # rows rewritten, count unchanged
    result = post.row_counts(before, snapshots.snapshot(conn), fail_on_row_loss=True)
    assert result.status == "ok" and row_data(result)["deltas"] == [] and row_data(result)["total_delta"] == 0
    assert result.reason == "no row count changes in 1 table"
    assert report.render_deltas(result) == []


def test_deltas_are_ordered_by_size_of_change_dropped_first_among_equals(conn):
    for name, rows in (("small_loss", 5), ("big_loss", 100), ("grows", 1), ("dropped", 10), ("same", 7)):
        make_table(conn, name, rows)
    before = snapshots.snapshot(conn)
    run(conn, "delete from small_loss where id = 1", "delete from big_loss where id <= 50",
        "insert into grows select g, '' from generate_series(2, 11) g", "drop table dropped")
    result = post.row_counts(before, snapshots.snapshot(conn), fail_on_row_loss=False)

    order = [(d["table"], d["delta"], d["status"]) for d in row_data(result)["deltas"]]
    assert order == [
        ("public.big_loss", -50, "lost_rows"),
        ("public.dropped", -10, "dropped"),
        ("public.grows", 10, "changed"),
        ("public.small_loss", -1, "lost_rows"),
    ]
    assert result.status == "warn"
    assert row_data(result)["total_delta"] == -51 and row_data(result)["rows_changed"] == 71
    assert result.reason.startswith("4 tables changed (1 dropped, 2 lost rows)")
    assert len(report.render_deltas(result, limit=2)) == 3
    assert report.render_deltas(result, limit=2)[-1] == "  … and 2 more tables"


def test_partitioned_table_is_the_sum_of_its_partitions_and_counted_once_in_totals(conn):
    run(conn,
        "create table events (id int, day date not null) partition by range (day)",
        "create table events_2024 partition of events for values from ('2024-01-01') to ('2025-01-01')",
        "create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01')",
        "insert into events select g, date '2024-06-01' + (g % 2) * 365 from generate_series(1, 20) g")
    before = snapshots.snapshot(conn)
    assert before.counts["public.events"] == snapshots.TableCount("public", "events", 20, True, "partitions", True)
    assert before.counts["public.events_2024"].rows + before.counts["public.events_2025"].rows == 20
    run(conn, "delete from events where day < '2025-01-01'")
    result = post.row_counts(before, snapshots.snapshot(conn), fail_on_row_loss=False)

    deltas = by_table(result)
    assert deltas["public.events"]["delta"] == -10 and deltas["public.events"]["partitioned"]
    assert deltas["public.events_2024"]["delta"] == -10
    assert row_data(result)["total_delta"] == -10  # not -20: the parent's rows are its partitions' rows


def test_inheritance_parent_counts_only_its_own_rows(conn):
    run(conn, "create table base (id int)", "create table child () inherits (base)",
        "insert into base values (1)", "insert into child values (2), (3)")
    snap = snapshots.snapshot(conn)
    assert (snap.counts["public.base"].rows, snap.counts["public.child"].rows) == (1, 2)


def test_identifiers_are_quoted(conn):
    run(conn, 'create schema "Odd Schema"', 'create table "Odd Schema"."Table ""quoted"" name" ("my col" int)',
        'insert into "Odd Schema"."Table ""quoted"" name" values (1), (2)')
    before = snapshots.snapshot(conn)
    key = 'Odd Schema.Table "quoted" name'
    assert before.counts[key].rows == 2 and before.counts[key].exact
    assert before.columns[key] == {'"my col" integer'}
    run(conn, 'alter table "Odd Schema"."Table ""quoted"" name" add column "select" text')
    summary = post.schema_summary(before, snapshots.snapshot(conn))
    assert summary.data["columns_added"] == [{"table": key, "column": '"select"', "type": "text"}]


# --- estimates for big tables -----------------------------------------------------------------


def seq_scans(pg, dbname: str, table: str) -> int:
    with psycopg.connect(pg.url(dbname), autocommit=True) as fresh:
        return fresh.execute("select seq_scan from pg_stat_user_tables where relname = %s", (table,)).fetchone()[0]


def flushed_seq_scans(conn, pg, table: str, at_least: int) -> int:
    """seq_scan as another session sees it, once this session's statistics have been flushed.

    Statistics reach shared memory only when a backend goes idle (and then at most once a second), so force the
    next flush and poll from fresh connections until the expected minimum shows.
    """
    conn.execute("select pg_stat_force_next_flush()")
    deadline = time.monotonic() + 15
    while True:
        value = seq_scans(pg, conn.info.dbname, table)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
        conn.execute("select pg_stat_force_next_flush()")


def test_big_table_is_estimated_and_never_scanned(conn, pg):
    # No index, so count(*) can only be a sequential scan; no autovacuum to move the statistics.
    run(conn, "create table big (id int, note text) with (autovacuum_enabled = off)",
        "insert into big select g, 'row ' || g from generate_series(1, 1000) g",
        "create table small (id int) with (autovacuum_enabled = off)",
        "insert into small values (1), (2), (3), (4), (5)",
        "analyze big", "analyze small")
    start = flushed_seq_scans(conn, pg, "big", 0)

    snap = snapshots.snapshot(conn, exact_threshold_rows=10)

    big = snap.counts["public.big"]
    assert big.exact is False and big.method == "reltuples" and 900 <= big.rows <= 1100
    assert snap.counts["public.small"] == snapshots.TableCount("public", "small", 5, True)  # analysed: 5 <= 10
    # Control: one scan we know happened, in the same session after snapshot(). When it shows, everything this
    # session did before it has been flushed too, so the count is exact: only the control's scan.
    assert conn.execute("select count(*) from big").fetchone()[0] == 1000
    assert flushed_seq_scans(conn, pg, "big", start + 1) == start + 1


def test_never_analysed_table_is_counted_only_when_provably_small(conn):
    run(conn, "create table fresh (id int) with (autovacuum_enabled = off)",
        "insert into fresh select generate_series(1, 1000)")
    snap = snapshots.snapshot(conn, exact_threshold_rows=10)
    fresh = snap.counts["public.fresh"]
    assert fresh.exact is False and fresh.rows > 0 and fresh.method in ("n_live_tup", "pages")
    # One page could hold up to 291 rows: above 10, so even a 1-page table is estimated until analysed …
    run(conn, "create table tiny (id int) with (autovacuum_enabled = off)", "insert into tiny values (1)")
    assert snapshots.snapshot(conn, exact_threshold_rows=10).counts["public.tiny"].exact is False
    # … but not with the default threshold.
    assert snapshots.snapshot(conn).counts["public.tiny"] == snapshots.TableCount("public", "tiny", 1, True)


def test_estimated_deltas_are_labelled(conn):
    run(conn, "create table big (id int) with (autovacuum_enabled = off)",
        "insert into big select generate_series(1, 1000)", "analyze big")
    before = snapshots.snapshot(conn, exact_threshold_rows=10)
    run(conn, "delete from big where id <= 500", "vacuum analyze big")
    result = post.row_counts(before, snapshots.snapshot(conn, exact_threshold_rows=10), fail_on_row_loss=False)
    (delta,) = row_data(result)["deltas"]
    assert delta["exact"] is False and delta["status"] == "lost_rows" and delta["delta"] < 0
    assert result.status == "warn" and "estimated" in result.reason
    line = report.render_deltas(result)[0]
    assert line.startswith("  public.big  ~1,000 → ~") and "(~-" in line and line.endswith("LOST ROWS")
    # A tolerance for statistics drift: a loss within it is listed, not flagged.
    tolerant = post.row_counts(before, snapshots.snapshot(conn, exact_threshold_rows=10), fail_on_row_loss=True,
                               estimate_tolerance=0.9)
    assert tolerant.status == "ok" and row_data(tolerant)["deltas"][0]["flagged"] is False


def test_table_locked_by_someone_else_is_estimated_without_waiting(conn, pg):
    make_table(conn, "busy", 3)
    make_table(conn, "quiet", 2)
    run(conn, "analyze busy")
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(pg.url(conn.info.dbname)) as other:  # a transaction, not autocommit
            other.execute("lock table busy in access exclusive mode")
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        snap = snapshots.snapshot(conn, lock_timeout_ms=200)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert elapsed < 5
    assert snap.counts["public.busy"].exact is False and snap.counts["public.busy"].rows == 3
    assert snap.counts["public.quiet"] == snapshots.TableCount("public", "quiet", 2, True)
    assert holder.is_alive() is False


def test_a_lock_taken_after_the_catalog_was_read_costs_one_lock_timeout(conn, pg):
    make_table(conn, "busy", 3)
    make_table(conn, "quiet", 2)
    run(conn, "analyze busy")
    with psycopg.connect(pg.url(conn.info.dbname)) as other:
        snap_rels = {r[2]: snapshots._Rel(*r) for r in conn.execute(snapshots._TABLES_SQL.format(size=snapshots._FILE_SIZE))}
        other.execute("lock table busy in access exclusive mode")
        started = time.monotonic()
        counted = snapshots._count_exact(conn, [snap_rels["busy"], snap_rels["quiet"]], 200)
        elapsed = time.monotonic() - started
    assert counted == {snap_rels["busy"].oid: None, snap_rels["quiet"].oid: 2}
    assert elapsed < 3


# --- what is left out -------------------------------------------------------------------------


def test_excluded_tables_never_appear(conn):
    run(conn, "create table schema_migrations (version bigint not null primary key, dirty boolean not null)",
        "insert into schema_migrations values (1, false)",
        "create schema migration_meta",
        "create table migration_meta.runs (id int primary key)", "insert into migration_meta.runs values (1)",
        "create table audit_log (id int)", "insert into audit_log values (1)",
        "create temporary table scratch (id int)", "insert into scratch values (1)")
    make_table(conn, "orders", 2)
    before = snapshots.snapshot(conn, exclude={"public.schema_migrations", "public.audit_log"})
    run(conn, "delete from schema_migrations", "drop table migration_meta.runs", "delete from audit_log")
    after = snapshots.snapshot(conn, exclude={"public.schema_migrations", "public.audit_log"})

    for snap in (before, after):
        assert set(snap.counts) == {"public.orders"}
        assert set(snap.columns) == {"public.orders"}
        assert snap.indexes == {"public.orders_pkey on public.orders"}
    assert post.row_counts(before, after, fail_on_row_loss=True).status == "ok"
    assert post.schema_summary(before, after).reason == "no schema change"
    assert "public.schema_migrations" not in snapshots.snapshot(conn).counts  # excluded by default
    assert "public.audit_log" in snapshots.snapshot(conn).counts


# --- schema summary ---------------------------------------------------------------------------


def test_schema_summary_reports_columns_indexes_and_tables(conn):
    make_table(conn, "orders", 2)
    make_table(conn, "old", 1)
    run(conn, "create index orders_note_idx on orders (note)")
    before = snapshots.snapshot(conn)
    run(conn,
        "alter table orders add column shipped_at timestamptz",
        "alter table orders alter column id type bigint",
        "drop index orders_note_idx",
        "create table refunds (id int primary key, order_id int not null)",
        "create table audit (id int)",
        "drop table old")
    result = post.schema_summary(before, snapshots.snapshot(conn))

    assert result.phase == "post" and result.name == "schema" and result.status == "ok"
    assert result.reason == "+2 tables, -1 table, +1 column, 1 column type changed, -1 index"
    assert result.data["tables_added"] == ["public.audit", "public.refunds"]
    assert result.data["tables_removed"] == ["public.old"]
    assert result.data["columns_added"] == [
        {"table": "public.orders", "column": "shipped_at", "type": "timestamp with time zone"}]
    assert result.data["columns_removed"] == []
    assert result.data["columns_retyped"] == [
        {"table": "public.orders", "column": "id", "before": "integer", "after": "bigint"}]
    assert result.data["indexes_added"] == []  # refunds_pkey belongs to a new table: counted as the table
    assert result.data["indexes_removed"] == ["public.orders_note_idx on public.orders"]


def test_schema_summary_without_change(conn):
    make_table(conn, "orders", 2)
    before = snapshots.snapshot(conn)
    run(conn, "insert into orders values (3, 'c')")
    result = post.schema_summary(before, snapshots.snapshot(conn))
    assert (result.status, result.reason) == ("ok", "no schema change")
    assert all(v == [] for v in result.data.values())


def test_added_and_removed_columns_and_indexes_on_existing_tables(conn):
    make_table(conn, "orders", 1)
    before = snapshots.snapshot(conn)
    run(conn, "alter table orders drop column note", "alter table orders add column a int",
        "alter table orders add column b int", "create index orders_a_idx on orders (a)",
        "create unique index orders_b_idx on orders (b)")
    result = post.schema_summary(before, snapshots.snapshot(conn))
    assert result.reason == "+2 columns, -1 column, +2 indexes"
    assert result.data["indexes_added"] == ["public.orders_a_idx on public.orders",
                                            "public.orders_b_idx on public.orders"]


# --- scale ------------------------------------------------------------------------------------


def test_two_thousand_small_tables_are_all_counted_exactly(conn, pg):
    """Correctness at a size where counting is batched; how fast it is lives in bench/ (benchmark 3), not here."""
    for start in range(1, 2001, 250):
        run(conn, f"""do $$ begin for i in {start}..{start + 249} loop
            execute format('create table t%s (id int primary key, note text)', i);
            execute format('insert into t%s values (1, ''a''), (2, ''b'')', i);
        end loop; end $$""")
    # A new session, with nothing cached about these tables, as after a real run.
    with psycopg.connect(pg.url(conn.info.dbname), autocommit=True) as fresh:
        snap = snapshots.snapshot(fresh)
    assert len(snap.counts) == 2000 and all(c.exact and c.rows == 2 for c in snap.counts.values())
    assert len(snap.indexes) == 2000


class _CountingConnection(psycopg.Connection):
    """Counts the statements it ran, so a test can tell that the helper connection really counted tables."""

    statements = 0

    def execute(self, *args, **kwargs):
        self.statements += 1
        return super().execute(*args, **kwargs)


def test_counting_on_a_second_connection_gives_the_same_counts(conn, pg):
    tables = snapshots.COUNT_CHUNK * 2 + 10  # three chunks: the helper counts the middle one
    run(conn, f"""do $$ begin for i in 1..{tables} loop
        execute format('create table t%s (id int)', i);
        execute format('insert into t%s select generate_series(1, %s)', i, i % 7);
    end loop; end $$""")
    opened: list[_CountingConnection] = []

    def more() -> psycopg.Connection:
        helper = _CountingConnection.connect(pg.url(conn.info.dbname), autocommit=True)
        opened.append(helper)
        return helper

    alone = snapshots.snapshot(conn)
    together = snapshots.snapshot(conn, connect_more=more)
    assert together.counts == alone.counts
    assert {key: c.rows for key, c in together.counts.items()} == {f"public.t{i}": i % 7 for i in range(1, tables + 1)}
    assert all(c.exact for c in together.counts.values())
    assert len(opened) == 1 and opened[0].statements >= 2 and opened[0].closed  # it counted, and was closed


def test_counting_stays_on_one_connection_when_no_second_one_opens(conn):
    from migrate_wrapper.errors import PreCheckFailed

    run(conn, f"""do $$ begin for i in 1..{snapshots.COUNT_CHUNK + 1} loop
        execute format('create table t%s (id int)', i);
        execute format('insert into t%s values (1)', i);
    end loop; end $$""")

    def refused() -> psycopg.Connection:
        raise PreCheckFailed("connectivity", "too many connections")

    snap = snapshots.snapshot(conn, connect_more=refused)
    assert len(snap.counts) == snapshots.COUNT_CHUNK + 1 and all(c.exact and c.rows == 1 for c in snap.counts.values())
