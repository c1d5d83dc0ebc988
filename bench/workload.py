"""What the benchmarks run against: generated migration folders, env files, and the at-scale database."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import Cluster

COMPONENT_DIR = Path("db") / "migrations" / "operational"
FIRST_ID = dt.datetime(2026, 1, 1, 0, 0)


def migration_ids(n: int) -> list[str]:
    """n house-rule ids, YYYYMMDDHHMM_slug, one minute apart."""
    return [f"{(FIRST_ID + dt.timedelta(minutes=i)):%Y%m%d%H%M}_create_t{i + 1}" for i in range(n)]


def trivial_project(root: Path, n: int) -> Path:
    """A project root whose operational folder holds n trivial migrations (create table tN / drop table tN)."""
    folder = root / COMPONENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (root / "db" / "migrations" / "analytics").mkdir(parents=True, exist_ok=True)
    _project_file(root)
    for i, mid in enumerate(migration_ids(n), start=1):
        (folder / f"{mid}.up.sql").write_text(f"create table t{i} (id int);\n")
        (folder / f"{mid}.down.sql").write_text(f"drop table t{i};\n")
    return folder


def _project_file(root: Path) -> None:
    """The shipped project file: the same two components."""
    shutil.copy(Path(__file__).resolve().parents[1] / "migrate-wrapper.toml", root / "migrate-wrapper.toml")


def write_env(path: Path, url: str, migrate_bin: Path, **extra: object) -> Path:
    lines = [f"DB_URL={url}", "MIGRATION_ENVIRONMENT=dev", f"MIGRATE_BIN={migrate_bin}"]
    lines += [f"{key}={value}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the at-scale database --------------------------------------------------------------------------------------

SCALE_MIGRATION = "202601010000_add_big_01_note"


@dataclass
class ScaleDb:
    name: str
    tables: int
    large: list[str]  # above the exact-count threshold: must never be scanned
    medium: list[str]  # below it: counted exactly
    small: int
    rows: int  # rows in all tables
    threshold: int
    build_seconds: float = 0.0
    size_bytes: int = 0

    @property
    def touched(self) -> str:
        return self.large[0]


def scale_project(root: Path, scale: ScaleDb) -> Path:
    """One pending migration that touches one large table (metadata-only: add / drop a nullable column)."""
    folder = root / COMPONENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (root / "db" / "migrations" / "analytics").mkdir(parents=True, exist_ok=True)
    _project_file(root)
    (folder / f"{SCALE_MIGRATION}.up.sql").write_text(f"alter table {scale.touched} add column bench_note text;\n")
    (folder / f"{SCALE_MIGRATION}.down.sql").write_text(f"alter table {scale.touched} drop column bench_note;\n")
    return folder


def reset_scale(cluster: Cluster, scale: ScaleDb) -> None:
    """Back to the state before the migration, for the next run (the audit ledger keeps its rows: a few)."""
    cluster.execute(scale.name, f"alter table {scale.touched} drop column if exists bench_note",
                    "drop table if exists public.schema_migrations")


def build_scale(cluster: Cluster, name: str, *, tables: int, rows: int, large: int, threshold: int,
                log=print) -> ScaleDb:  # noqa: ANN001
    """`tables` tables: `large` of them share `rows` (minus what the others hold) and are above `threshold`;
    a few medium ones just below it (counted exactly); the rest tiny (0–19 rows, a fifth of them empty).
    Then VACUUM ANALYZE and a checkpoint, so the catalog is current and autovacuum stays away from the timed runs."""
    started = time.perf_counter()
    medium_count = min(5, max(1, tables // 1000)) if tables > large + 1 else 0
    medium_rows = threshold // 2
    small = tables - large - medium_count
    small_rows = sum(i % 20 for i in range(1, small + 1))
    large_rows = max(threshold * 2, (rows - medium_count * medium_rows - small_rows) // large)
    scale = ScaleDb(name, tables, [f"big_{i:02d}" for i in range(1, large + 1)],
                    [f"mid_{i}" for i in range(1, medium_count + 1)], small,
                    large * large_rows + medium_count * medium_rows + small_rows, threshold)
    cluster.recreate(name)
    log(f"  building {name}: {small} small, {medium_count} medium ({medium_rows} rows), "
        f"{large} large ({large_rows} rows each)")
    batch = 500  # tables per transaction: each holds locks until commit (max_locks_per_transaction)
    for start in range(1, small + 1, batch):
        stop = min(small, start + batch - 1)
        cluster.execute(name, f"""
            do $$ begin
              for i in {start}..{stop} loop
                execute format('create table small_%s (id int primary key, name text not null,
                                created_at timestamptz not null default now())', lpad(i::text, 5, '0'));
                if i % 20 > 0 then
                  execute format('insert into small_%s (id, name) select g, ''row '' || g
                                  from generate_series(1, %s) g', lpad(i::text, 5, '0'), i % 20);
                end if;
              end loop;
            end $$""")
    for table in scale.medium:
        cluster.execute(name, f"create table {table} (id bigint primary key, account_id int not null, note text)",
                        f"insert into {table} select g, g % 1000, 'medium row ' || g "
                        f"from generate_series(1, {medium_rows}) g")

    def fill(table: str) -> None:
        cluster.execute(
            name,
            f"create table {table} (id bigint primary key, account_id int not null, amount_cents bigint not null,"
            f" note text)",
            f"insert into {table} select g, g % 10000, (g * 7919) % 100000, 'order ' || g "
            f"from generate_series(1::bigint, {large_rows}) g",
            f"vacuum (analyze) {table}",
        )

    errors: list[BaseException] = []

    def worker(chunk: list[str]) -> None:
        try:
            for table in chunk:
                fill(table)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    # Two connections at a time: the machine has two cores.
    threads = [threading.Thread(target=worker, args=(scale.large[i::2],)) for i in range(min(2, large))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    # Database-wide: the small tables and the system catalogs too (creating 5,000 tables churns pg_class and
    # pg_attribute, which autovacuum would otherwise pick up during the timed runs); then a checkpoint, so the
    # background writes of the build do not compete with the measurements. A database at rest, as in production.
    cluster.execute(name, "vacuum (analyze)", "checkpoint")
    scale.size_bytes = cluster.query(name, "select pg_database_size(current_database())")[0][0]
    scale.build_seconds = time.perf_counter() - started
    return scale


def seq_scans(cluster: Cluster, scale: ScaleDb) -> dict[str, int]:
    """pg_stat_user_tables.seq_scan of every table, from a fresh connection (no cached statistics snapshot)."""
    rows = cluster.query(scale.name, "select relname, seq_scan from pg_stat_user_tables where schemaname = 'public'")
    return {name: count for name, count in rows}


def control_scan(cluster: Cluster, scale: ScaleDb, before: dict[str, int]) -> int:
    """Proof that the seq_scan reading sees scans: one deliberate count(*) of a large table (no parallel workers),
    its statistics flushed, read back from a fresh connection. Returns the seq_scan delta (1 when it works)."""
    table = scale.large[-1]
    with cluster.connect(scale.name) as conn:
        conn.execute("set max_parallel_workers_per_gather = 0")
        conn.execute(f"select count(*) from {table}").fetchone()
        conn.execute("select pg_stat_force_next_flush()")
        conn.execute("select 1")
    return seq_scans(cluster, scale).get(table, 0) - before.get(table, 0)
