"""Checks that run after an apply or rollback: what happened to the rows and to the schema. Both compare two
snapshots (postgres/snapshot.py); neither touches the database."""

from __future__ import annotations

from migrate_wrapper.errors import plural
from migrate_wrapper.events import CheckResult, RowCounts, RowDelta
from migrate_wrapper.postgres.snapshot import Snapshot


def _result(name: str, status: str, reason: str, **data: object) -> CheckResult:
    return CheckResult(phase="post", name=name, status=status, reason=reason, data=data)


_TIE_ORDER = {"dropped": 0, "lost_rows": 1, "new": 2, "changed": 3}


def row_counts(
    before: Snapshot, after: Snapshot, *, fail_on_row_loss: bool, estimate_tolerance: float = 0.0
) -> CheckResult:
    """Per-table row deltas; lost rows and dropped tables are flagged (warn, or fail with fail_on_row_loss).

    `estimate_tolerance`: a decrease where either side is an estimate is flagged only when larger than this
    fraction of the earlier count (statistics drift between snapshots; 0.0 flags every decrease).
    Partitioned tables are listed but left out of total_delta and rows_changed: their partitions carry the rows.
    """
    deltas: list[RowDelta] = []
    for key in before.counts.keys() | after.counts.keys():
        b, a = before.counts.get(key), after.counts.get(key)
        if a is None:
            status, delta, exact, flagged = "dropped", -b.rows, b.exact, True
        elif b is None:
            status, delta, exact, flagged = "new", a.rows, a.exact, False
        else:
            delta, exact = a.rows - b.rows, a.exact and b.exact
            if delta == 0:
                continue
            status = "lost_rows" if delta < 0 else "changed"
            flagged = delta < 0 and (exact or -delta > estimate_tolerance * b.rows)
        deltas.append(RowDelta(key, b.rows if b else None, a.rows if a else None, delta, exact, status, flagged,
                               (a or b).partitioned))
    deltas.sort(key=lambda d: (-abs(d.delta), _TIE_ORDER[d.status], d.table))
    leaf = [d for d in deltas if not d.partitioned]
    total = sum(d.delta for d in leaf)
    changed = sum(abs(d.delta) for d in leaf)
    status = ("fail" if fail_on_row_loss else "warn") if any(d.flagged for d in deltas) else "ok"
    compared = len(before.counts.keys() | after.counts.keys())
    if not deltas:
        reason = f"no row count changes in {plural(compared, 'table')}"
    else:
        kinds = {s: sum(1 for d in deltas if d.status == s) for s in _TIE_ORDER}
        parts = [f"{kinds['dropped']} dropped"] if kinds["dropped"] else []
        lost = sum(1 for d in deltas if d.status == "lost_rows" and d.flagged)
        if lost:
            parts.append(f"{lost} lost rows")
        if kinds["new"]:
            parts.append(f"{kinds['new']} new")
        reason = f"{plural(len(deltas), 'table')} changed" + (f" ({', '.join(parts)})" if parts else "")
        reason += f", net {total:+,} rows"
        if any(not d.exact for d in deltas):
            reason += " (some estimated)"
    return CheckResult("post", "row_counts", status, reason,
                       rows=RowCounts(tuple(deltas), total_delta=total, rows_changed=changed, tables_compared=compared))


def _split_column(text: str) -> tuple[str, str]:
    """'name type' (name as quote_ident gives it, possibly "quoted") -> (name, type)."""
    if text.startswith('"'):
        i = 1
        while True:
            j = text.index('"', i)
            if text[j + 1 : j + 2] == '"':
                i = j + 2
                continue
            return text[: j + 1], text[j + 2 :]
    name, _, kind = text.partition(" ")
    return name, kind


def _index_table(entry: str) -> str:
    return entry.rsplit(" on ", 1)[1]


def schema_summary(before: Snapshot, after: Snapshot) -> CheckResult:
    """Tables added/removed; columns added/removed/retyped and indexes added/removed on tables in both."""
    b_tables, a_tables = set(before.columns), set(after.columns)
    common = b_tables & a_tables
    columns_added: list[dict] = []
    columns_removed: list[dict] = []
    columns_retyped: list[dict] = []
    for table in sorted(common):
        b_cols = dict(_split_column(c) for c in before.columns[table])
        a_cols = dict(_split_column(c) for c in after.columns[table])
        for col in sorted(a_cols.keys() - b_cols.keys()):
            columns_added.append({"table": table, "column": col, "type": a_cols[col]})
        for col in sorted(b_cols.keys() - a_cols.keys()):
            columns_removed.append({"table": table, "column": col, "type": b_cols[col]})
        for col in sorted(b_cols.keys() & a_cols.keys()):
            if b_cols[col] != a_cols[col]:
                columns_retyped.append({"table": table, "column": col, "before": b_cols[col], "after": a_cols[col]})
    indexes_added = sorted(i for i in after.indexes - before.indexes if _index_table(i) in common)
    indexes_removed = sorted(i for i in before.indexes - after.indexes if _index_table(i) in common)
    tables_added, tables_removed = sorted(a_tables - b_tables), sorted(b_tables - a_tables)

    parts = []
    for n, sign, word, many in (
        (len(tables_added), "+", "table", None),
        (len(tables_removed), "-", "table", None),
        (len(columns_added), "+", "column", None),
        (len(columns_removed), "-", "column", None),
        (len(columns_retyped), "", "column type changed", "column types changed"),
        (len(indexes_added), "+", "index", "indexes"),
        (len(indexes_removed), "-", "index", "indexes"),
    ):
        if n:
            parts.append(sign + plural(n, word, many))
    return _result(
        "schema",
        "ok",
        ", ".join(parts) or "no schema change",
        tables_added=tables_added,
        tables_removed=tables_removed,
        columns_added=columns_added,
        columns_removed=columns_removed,
        columns_retyped=columns_retyped,
        indexes_added=indexes_added,
        indexes_removed=indexes_removed,
    )
