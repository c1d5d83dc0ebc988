"""What a migration file does, read with pglast (PostgreSQL's own parser): tables touched, locks needed, and whether
golang-migrate's one-implicit-transaction execution really makes it atomic. pglast is imported only here (~100 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# PostgreSQL's table-lock conflict matrix (docs: "Conflicting Lock Modes").
ACCESS_SHARE = "AccessShareLock"
ROW_SHARE = "RowShareLock"
ROW_EXCLUSIVE = "RowExclusiveLock"
SHARE_UPDATE_EXCLUSIVE = "ShareUpdateExclusiveLock"
SHARE = "ShareLock"
SHARE_ROW_EXCLUSIVE = "ShareRowExclusiveLock"
EXCLUSIVE = "ExclusiveLock"
ACCESS_EXCLUSIVE = "AccessExclusiveLock"
MODES = [ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
         ACCESS_EXCLUSIVE]
CONFLICTS: dict[str, set[str]] = {
    ACCESS_SHARE: {ACCESS_EXCLUSIVE},
    ROW_SHARE: {EXCLUSIVE, ACCESS_EXCLUSIVE},
    ROW_EXCLUSIVE: {SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE},
    SHARE_UPDATE_EXCLUSIVE: {SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE},
    SHARE: {ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE},
    SHARE_ROW_EXCLUSIVE: {ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                          ACCESS_EXCLUSIVE},
    EXCLUSIVE: {ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                ACCESS_EXCLUSIVE},
    ACCESS_EXCLUSIVE: set(MODES),
}


def stronger(a: str, b: str) -> str:
    return a if MODES.index(a) >= MODES.index(b) else b


@dataclass
class FileInfo:
    tables: dict[str, str] = field(default_factory=dict)  # "schema.table" or "table" → strongest lock mode
    statements: int = 0
    transaction_control: bool = False  # its own BEGIN/COMMIT: not one atomic unit
    concurrently: bool = False  # CREATE/DROP INDEX CONCURRENTLY: cannot run in golang-migrate's implicit transaction
    parse_error: str | None = None

    @property
    def atomic(self) -> bool:
        """A failure or a cancel rolls the whole file back (what golang-migrate's implicit transaction gives)."""
        return self.parse_error is None and not self.transaction_control and not self.concurrently


def _name(range_var) -> str:
    return f"{range_var.schemaname}.{range_var.relname}" if range_var.schemaname else range_var.relname


def analyse(sql_text: str) -> FileInfo:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from pglast.visitors import Visitor

    info = FileInfo()
    try:
        statements = parse_sql(sql_text)
    except ParseError as exc:
        info.parse_error = str(exc)
        return info

    def need(name: str, mode: str) -> None:
        info.tables[name] = stronger(info.tables.get(name, mode), mode)

    class Tables(Visitor):
        def __init__(self) -> None:
            self.found: list[str] = []

        def visit_RangeVar(self, parent, node) -> None:  # noqa: N802 - pglast's naming
            self.found.append(_name(node))

    for raw in statements:
        stmt = raw.stmt
        info.statements += 1
        collector = Tables()
        collector(stmt)
        main: str | None = None
        mode = ACCESS_SHARE
        if isinstance(stmt, ast.TransactionStmt):
            info.transaction_control = True
        elif isinstance(stmt, ast.IndexStmt):
            info.concurrently |= bool(stmt.concurrent)
            main, mode = _name(stmt.relation), SHARE_UPDATE_EXCLUSIVE if stmt.concurrent else SHARE
        elif isinstance(stmt, ast.DropStmt) and stmt.concurrent:
            info.concurrently = True
        elif isinstance(stmt, (ast.AlterTableStmt, ast.RenameStmt)) and getattr(stmt, "relation", None) is not None:
            main, mode = _name(stmt.relation), ACCESS_EXCLUSIVE
        elif isinstance(stmt, ast.DropStmt) or isinstance(stmt, ast.TruncateStmt):
            mode = ACCESS_EXCLUSIVE
            for name in collector.found:
                need(name, ACCESS_EXCLUSIVE)
            if isinstance(stmt, ast.DropStmt) and stmt.objects:
                for obj in stmt.objects:  # DROP TABLE/INDEX/VIEW a.b: names come as lists of String nodes
                    parts = [getattr(p, "sval", None) for p in (obj if isinstance(obj, tuple) else ())]
                    if parts and all(parts):
                        need(".".join(parts), ACCESS_EXCLUSIVE)
        elif isinstance(stmt, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)):
            main, mode = _name(stmt.relation), ROW_EXCLUSIVE
        elif isinstance(stmt, ast.CreateTrigStmt):
            main, mode = _name(stmt.relation), SHARE_ROW_EXCLUSIVE
        elif isinstance(stmt, ast.CreateStmt):
            # A new table conflicts with nothing; its foreign keys lock the tables they reference.
            created = _name(stmt.relation)
            for name in collector.found:
                if name != created:
                    need(name, SHARE_ROW_EXCLUSIVE)
            continue
        for name in collector.found:
            if name == main:
                need(name, mode)
            elif isinstance(stmt, ast.AlterTableStmt):
                need(name, SHARE_ROW_EXCLUSIVE)  # foreign keys added by ALTER lock the referenced table too
            else:
                need(name, ACCESS_SHARE)
    return info
