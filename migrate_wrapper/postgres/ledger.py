"""The audit ledger: one row per apply or rollback that ran, in `migration_meta.migration_audit` of the target.

A row is written when the run starts changing the database (outcome `running`) and completed when it ends, so a
wrapper killed mid-run still leaves evidence. Status, dry runs and refused runs never write here.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from migrate_wrapper import __version__
from migrate_wrapper.events import RunInfo
from migrate_wrapper.model.plan import Applied, History

if TYPE_CHECKING:
    import psycopg

SCHEMA = "migration_meta"
REPAIR = "repair"  # the direction recorded for a repair run (apply: up, rollback: down)
TABLE = "migration_audit"

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.{TABLE} (
    run_id text primary key,
    component text not null,
    environment text not null,
    direction text not null,
    from_version text,
    to_version text,
    steps jsonb not null default '[]',
    author text,
    approver text,
    host text,
    wrapper_version text,
    migrate_version text,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    outcome text not null,
    error text,
    trace_id text,
    evidence jsonb
);
"""
# Ledgers made before the evidence column: added once (ALTER locks the table, so only when it is missing).
_ADD_EVIDENCE = f"""
do $$ begin
  if not exists (select 1 from information_schema.columns where table_schema = '{SCHEMA}' and table_name = '{TABLE}'
                 and column_name = 'evidence') then
    alter table {SCHEMA}.{TABLE} add column evidence jsonb;
  end if;
end $$;
"""


def begin(conn: psycopg.Connection, run: RunInfo, *, author: str, approver: str | None, migrate_version: str) -> None:
    import psycopg

    for attempt in range(2):  # two wrappers creating the table at once: the loser retries once
        try:
            with conn.transaction():
                conn.execute(_DDL)
                conn.execute(_ADD_EVIDENCE)
            break
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            if attempt:
                raise
    conn.execute(
        f"""insert into {SCHEMA}.{TABLE} (run_id, component, environment, direction, from_version, to_version,
                author, approver, host, wrapper_version, migrate_version, outcome, trace_id)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'running', %s)""",
        (run.run_id, run.component, run.environment, run.direction, run.from_version, run.target, author, approver,
         socket.gethostname(), __version__, migrate_version, run.trace_id),
    )


def finish(conn: psycopg.Connection, run: RunInfo, outcome: str, error: str | None) -> None:
    steps = [
        {"id": s.id, "version": s.version, "direction": s.direction, "duration_ms": s.duration_ms, "sha256": s.sha256}
        for s in run.steps
    ]
    conn.execute(
        f"""update {SCHEMA}.{TABLE} set steps = %s::jsonb, finished_at = now(), outcome = %s, error = %s
            where run_id = %s""",
        (json.dumps(steps), outcome, error, run.run_id),
    )


def record_evidence(conn: psycopg.Connection, run_id: str, evidence: dict) -> None:
    """What is known of the step running now (its transaction id, its verdict): what repair reads after a kill."""
    conn.execute(f"update {SCHEMA}.{TABLE} set evidence = %s::jsonb where run_id = %s", (json.dumps(evidence), run_id))


def last_evidence(conn: psycopg.Connection, component: str) -> tuple[str, dict | None] | None:
    """(run_id, evidence) of the component's newest apply or rollback; None without a ledger or such a run."""
    exists = conn.execute("select to_regclass(%s) is not null", (f"{SCHEMA}.{TABLE}",)).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(  # to_jsonb(t)->'evidence': null also in a ledger made before that column
        f"select run_id, to_jsonb(t)->'evidence' from {SCHEMA}.{TABLE} t "
        "where component = %s and direction in ('up', 'down') order by started_at desc, run_id desc limit 1",
        (component,),
    ).fetchone()
    return (row[0], row[1]) if row else None


UNKNOWN = 2**63  # covered_from when the history cannot vouch for any version


def _version(migration_id: str | None) -> int:
    return int(migration_id.split("_", 1)[0]) if migration_id else -1


def history(conn: psycopg.Connection, component: str) -> History | None:
    """Read-only; None when there is no ledger (or no run of this component) yet."""
    exists = conn.execute("select to_regclass(%s) is not null", (f"{SCHEMA}.{TABLE}",)).fetchone()[0]
    if not exists:
        return None
    rows = conn.execute(
        f"""select from_version, steps, outcome, direction, to_version,
                   format('run %%s (%%s by %%s on %%s, started %%s)', run_id, direction, coalesce(author, '?'),
                          coalesce(host, '?'), to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZ')),
                   to_jsonb(t)->'evidence', author,
                   to_char(coalesce(finished_at, started_at) at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
            from {SCHEMA}.{TABLE} t where component = %s order by started_at, run_id""",
        (component,),
    ).fetchall()
    if not rows:
        return None
    first_from = rows[0][0]
    result = History(covered_from=_version(first_from))
    for _, steps, outcome, direction, to_version, described, evidence, author, at in rows:
        if direction in ("up", "down"):
            result.last_step = evidence  # the newest apply's or rollback's, once the loop is done
        if outcome == "running":
            result.unfinished.append(described)
            # A run that never finished (killed) recorded no steps: nothing above its start is known for sure.
            result.covered_from = UNKNOWN
        if direction == REPAIR and outcome == "ok":
            # A repair settled the version: what lies at or below it counts as applied from here on.
            result.covered_from = _version(to_version)
            result.unfinished.clear()
        for step in steps or []:
            version = int(step["version"])
            if step["direction"] == "up":
                result.applied.add(version)
                result.applied_by[version] = Applied(at, author, step.get("duration_ms"))
                if step.get("sha256"):
                    result.sha256[version] = step["sha256"]
            else:
                result.applied.discard(version)
                result.applied_by.pop(version, None)
    return result
