"""What a migration file does, read with pglast (PostgreSQL's own parser): tables touched, locks needed, and whether
golang-migrate's one-implicit-transaction execution really makes it atomic. pglast is imported only here (~100 ms).
"""

from __future__ import annotations

import functools
import re
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
    concurrently: bool = False  # … CONCURRENTLY (index, reindex, detach): cannot run in a transaction
    commits_itself: str | None = None  # what in the file can commit on its own (CALL, a DO block's COMMIT, dblink…)
    parse_error: str | None = None

    @property
    def atomic(self) -> bool:
        """A failure or a cancel rolls the whole file back (what golang-migrate's implicit transaction gives).

        Errs on the safe side: anything that can commit on its own makes the file non-atomic, because restore and
        repair trust this judgement to decide that nothing of a failed step is left."""
        return (self.parse_error is None and not self.transaction_control and not self.concurrently
                and self.commits_itself is None)


def _name(range_var) -> str:
    return f"{range_var.schemaname}.{range_var.relname}" if range_var.schemaname else range_var.relname


@functools.cache
def _tables_visitor():
    """A pglast visitor collecting every table a statement names; built once (a class per call cost ~0.3 ms)."""
    from pglast.visitors import Visitor

    class Tables(Visitor):
        def __init__(self) -> None:
            self.found: list[str] = []

        def visit_RangeVar(self, parent, node) -> None:  # noqa: N802 - pglast's naming
            self.found.append(_name(node))

    return Tables


# Work that commits outside the file's own transaction: another connection (dblink, and extensions built for it),
# or a transaction-control word inside a procedure or DO body, which pglast sees only as a string.
_OWN_CONNECTION = re.compile(r"\b(dblink\w*|pg_background\w*)\s*\(", re.I)
_TRANSACTION_WORD = re.compile(r"\b(commit|rollback)\b", re.I)


def _commits_itself(stmt, ast) -> str | None:
    if isinstance(stmt, ast.CallStmt):
        return "CALL (a procedure may COMMIT)"
    if isinstance(stmt, ast.DoStmt):
        body = " ".join(str(getattr(arg.arg, "sval", "")) for arg in stmt.args or () if arg.defname == "as")
        if _TRANSACTION_WORD.search(body):
            return "a DO block with COMMIT or ROLLBACK"
    if isinstance(stmt, (ast.VacuumStmt, ast.CreatedbStmt, ast.DropdbStmt, ast.AlterSystemStmt,
                         ast.CreateTableSpaceStmt, ast.DropTableSpaceStmt, ast.CreateSubscriptionStmt,
                         ast.DropSubscriptionStmt)):
        return f"{type(stmt).__name__.removesuffix('Stmt').upper()} (runs outside any transaction)"
    if isinstance(stmt, ast.ReindexStmt) and stmt.kind is not None and stmt.kind.name in (
            "REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
        return "REINDEX SYSTEM/DATABASE (commits per table)"
    return None


def shown_query(text: str, limit: int = 120) -> str:
    """Another session's SQL as a message may show it. Queries (SELECT, INSERT, UPDATE, DELETE, MERGE) are shown
    with every literal replaced ($1, $2, …) by PostgreSQL's own normaliser (libpg_query, through pglast) and their
    comments removed, white space folded, capped. Anything else may hold a secret where no literal is (a server's
    options, a COPY program, a column default, a comment's text): only its kind is shown. Text that does not parse
    (cut short by track_activity_query_size, say) cannot be masked, so it is not shown at all."""
    from pglast import ast, parse_sql
    from pglast.parser import normalize, scan

    if not text.strip():
        return "(no query)"
    try:
        kinds = {type(raw.stmt) for raw in parse_sql(text)}
        normal = normalize(text)
        tokens = scan(normal)
    except Exception:  # noqa: BLE001 - ParseError, or anything the C normaliser rejects
        return "(query not shown: it does not parse, so its literals cannot be masked)"
    plain = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
    if not kinds or not all(issubclass(kind, plain) for kind in kinds):
        names = sorted(kind.__name__.removesuffix("Stmt").upper() for kind in kinds)
        return f"({', '.join(names) or 'empty'} statement: its text is not shown)"
    chars = list(normal)
    for token in tokens:
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            chars[token.start:token.end + 1] = " " * (token.end + 1 - token.start)
    one = " ".join("".join(chars).split())
    return one if len(one) <= limit else one[:limit] + "…"


def analyse(sql_text: str) -> FileInfo:
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError

    Tables = _tables_visitor()
    info = FileInfo()
    try:
        statements = parse_sql(sql_text)
    except ParseError as exc:
        info.parse_error = str(exc)
        return info
    if m := _OWN_CONNECTION.search(sql_text):
        info.commits_itself = f"{m.group(1)}() (works on a connection of its own)"

    def need(name: str, mode: str) -> None:
        info.tables[name] = stronger(info.tables.get(name, mode), mode)

    wrapped = _wrapped_whole(statements, ast, enums)
    for raw in statements:
        stmt = raw.stmt
        info.statements += 1
        info.concurrently |= _cannot_run_in_transaction(stmt, ast, enums.AlterTableType)
        info.commits_itself = info.commits_itself or _commits_itself(stmt, ast)
        collector = Tables()
        collector(stmt)
        main: str | None = None
        mode = ACCESS_SHARE
        if isinstance(stmt, ast.TransactionStmt):
            info.transaction_control = info.transaction_control or not wrapped
        elif isinstance(stmt, ast.IndexStmt):
            main, mode = _name(stmt.relation), SHARE_UPDATE_EXCLUSIVE if stmt.concurrent else SHARE
        elif isinstance(stmt, ast.DropStmt) and stmt.concurrent:
            pass  # DROP INDEX CONCURRENTLY takes no lock that blocks writes
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


# --- What each statement does to tables and their rows, in file order (for lint's destructive and classification
# rules). Names are "table" for the public schema (or none given) and "schema.table" otherwise.


@dataclass(frozen=True)
class TypeSpec:
    name: str  # canonical: int4, varchar, numeric, text, … ("schema.name" for user types)
    mods: tuple[int, ...] = ()  # varchar(50) → (50,), numeric(10,2) → (10, 2)
    array: bool = False

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.mods))})" if self.mods else ""
        return f"{self.name}{mods}{'[]' if self.array else ''}"


@dataclass(frozen=True)
class Change:
    # create_table, create_table_unlisted (LIKE/INHERITS/AS: columns not written out), add_column, drop_table,
    # drop_column, alter_type, truncate, delete_all, rename_table, rename_column
    action: str
    table: str
    line: int  # 1-based
    column: str | None = None
    type: TypeSpec | None = None
    using: bool = False  # alter_type with a USING conversion
    new_name: str | None = None  # renames


@dataclass
class Details:
    statements: int = 0
    changes: list[Change] = field(default_factory=list)
    concurrently_lines: list[int] = field(default_factory=list)  # statements that cannot run in a transaction
    transaction_lines: list[int] = field(default_factory=list)  # own BEGIN/COMMIT/ROLLBACK (not one wrapping it all)
    index_tables: list[tuple[int, str, str]] = field(default_factory=list)  # (line, table, index) of CREATE INDEX
    dropped_indexes: list[tuple[int, str]] = field(default_factory=list)  # (line, index) of each DROP INDEX
    parse_error: str | None = None
    parse_error_line: int | None = None


# Spellings the parser leaves unqualified (it qualifies `integer`, `varchar`, … itself as pg_catalog.*).
_TYPE_ALIASES = {"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8", "smallserial": "int2",
                 "serial2": "int2", "int": "int4", "integer": "int4", "smallint": "int2", "bigint": "int8",
                 "boolean": "bool", "decimal": "numeric", "real": "float4"}


def _type_spec(type_name) -> TypeSpec | None:
    if type_name is None:
        return None
    names = [getattr(n, "sval", "") for n in type_name.names]
    if len(names) == 2 and names[0] == "pg_catalog":
        name = names[1]
    elif len(names) == 1:
        name = _TYPE_ALIASES.get(names[0], names[0])
    else:
        name = ".".join(names[1:] if names[0] == "public" else names)
    mods = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        if value is None:
            return TypeSpec(name, (-1,), bool(type_name.arrayBounds))  # an expression: never equal to a number
        mods.append(int(value))
    return TypeSpec(name, tuple(mods), bool(type_name.arrayBounds))


def _key(schema: str | None, name: str) -> str:
    return name if schema in (None, "", "public") else f"{schema}.{name}"


def _line_at(text: str, offset: int) -> int:
    """1-based line of the first token at or after offset (statement locations include leading comments)."""
    i, n = max(offset, 0), len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            depth, i = 1, i + 2  # PostgreSQL's block comments nest
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    return text.count("\n", 0, min(i, n)) + 1


def _wrapped_whole(statements, ast, enums) -> bool:
    """BEGIN first, COMMIT last and no other transaction statement: the file is still one transaction (a failure
    inside leaves it aborted, and the session's end rolls it back), so it stays all or nothing."""
    kinds = enums.TransactionStmtKind
    control = [i for i, raw in enumerate(statements) if isinstance(raw.stmt, ast.TransactionStmt)]
    if len(statements) < 2 or control != [0, len(statements) - 1]:
        return False
    first, last = statements[0].stmt.kind, statements[-1].stmt.kind
    return first in (kinds.TRANS_STMT_BEGIN, kinds.TRANS_STMT_START) and last == kinds.TRANS_STMT_COMMIT


def _cannot_run_in_transaction(stmt, ast, alter) -> bool:
    """CREATE/DROP INDEX, REINDEX and DETACH PARTITION … CONCURRENTLY refuse to run inside a transaction block."""
    if isinstance(stmt, (ast.IndexStmt, ast.DropStmt)):
        return bool(stmt.concurrent)
    if isinstance(stmt, ast.ReindexStmt):
        return any(getattr(p, "defname", None) == "concurrently" for p in stmt.params or ())
    if isinstance(stmt, ast.AlterTableStmt):
        return any(cmd.subtype == alter.AT_DetachPartition and getattr(cmd.def_, "concurrent", False)
                   for cmd in stmt.cmds or ())
    return False


def details(sql_text: str) -> Details:
    """Statement by statement: what it creates, drops, empties or retypes, and on which line."""
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError

    result = Details()
    try:
        statements = parse_sql(sql_text)
    except ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        result.parse_error = str(exc.args[0]) if exc.args else str(exc)
        result.parse_error_line = sql_text.count("\n", 0, max(location, 0)) + 1
        return result

    obj = enums.ObjectType
    alter = enums.AlterTableType
    wrapped = _wrapped_whole(statements, ast, enums)
    for raw in statements:
        stmt = raw.stmt
        result.statements += 1
        line = _line_at(sql_text, raw.stmt_location or 0)
        add = result.changes.append
        if _cannot_run_in_transaction(stmt, ast, alter):
            result.concurrently_lines.append(line)
        if isinstance(stmt, ast.TransactionStmt) and not wrapped:
            result.transaction_lines.append(line)
        if isinstance(stmt, ast.IndexStmt) and stmt.relation is not None:
            table = _key(stmt.relation.schemaname, stmt.relation.relname)
            result.index_tables.append((line, table, _key(stmt.relation.schemaname, stmt.idxname or "")))
        if isinstance(stmt, ast.DropStmt) and stmt.removeType == obj.OBJECT_INDEX:
            for names in stmt.objects or ():
                parts = [getattr(p, "sval", "") for p in names]
                result.dropped_indexes.append((line, _key(parts[-2] if len(parts) > 1 else None, parts[-1])))
        if isinstance(stmt, ast.CreateStmt):
            table = _key(stmt.relation.schemaname, stmt.relation.relname)
            if stmt.partbound is not None:
                add(Change("create_table", table, line))  # a partition: its columns are its parent's
                continue
            elements = stmt.tableElts or ()
            unlisted = bool(stmt.inhRelations) or any(isinstance(e, ast.TableLikeClause) for e in elements)
            add(Change("create_table_unlisted" if unlisted else "create_table", table, line))
            for element in elements:
                if isinstance(element, ast.ColumnDef):
                    column_line = _line_at(sql_text, element.location) if element.location is not None else line
                    add(Change("add_column", table, column_line, element.colname, _type_spec(element.typeName)))
        elif isinstance(stmt, ast.CreateTableAsStmt) and stmt.objtype == obj.OBJECT_TABLE:
            add(Change("create_table_unlisted", _key(stmt.into.rel.schemaname, stmt.into.rel.relname), line))
        elif isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == obj.OBJECT_TABLE:
            table = _key(stmt.relation.schemaname, stmt.relation.relname)
            for cmd in stmt.cmds or ():
                if cmd.subtype == alter.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                    add(Change("add_column", table, line, cmd.def_.colname, _type_spec(cmd.def_.typeName)))
                elif cmd.subtype == alter.AT_DropColumn:
                    add(Change("drop_column", table, line, cmd.name))
                elif cmd.subtype == alter.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
                    add(Change("alter_type", table, line, cmd.name, _type_spec(cmd.def_.typeName),
                               using=cmd.def_.raw_default is not None))
        elif isinstance(stmt, ast.DropStmt) and stmt.removeType == obj.OBJECT_TABLE:
            for names in stmt.objects or ():
                parts = [getattr(p, "sval", "") for p in names]
                add(Change("drop_table", _key(parts[-2] if len(parts) > 1 else None, parts[-1]), line))
        elif isinstance(stmt, ast.TruncateStmt):
            for rel in stmt.relations or ():
                add(Change("truncate", _key(rel.schemaname, rel.relname), line))
        elif isinstance(stmt, ast.DeleteStmt) and stmt.whereClause is None:
            add(Change("delete_all", _key(stmt.relation.schemaname, stmt.relation.relname), line))
        elif isinstance(stmt, ast.RenameStmt) and stmt.relation is not None:
            table = _key(stmt.relation.schemaname, stmt.relation.relname)
            if stmt.renameType == obj.OBJECT_TABLE:
                add(Change("rename_table", table, line, new_name=_key(stmt.relation.schemaname, stmt.newname)))
            elif stmt.renameType == obj.OBJECT_COLUMN and stmt.relationType == obj.OBJECT_TABLE:
                add(Change("rename_column", table, line, stmt.subname, new_name=stmt.newname))
    return result
