"""A database's schema read from the catalog (schema/markdown.py renders it).

One description serves three jobs: `db/schema/<component>.md` (with each column's classification), the smoke test's
comparison of a live schema with what the migrations produce, and validate-schema's classification coverage. So it
holds only what both sides of a comparison share: no owners, grants, sizes, statistics, OIDs or timestamps, and names
always schema-qualified (the catalog is read with search_path = pg_catalog, so nothing depends on the session's).
Everything is sorted by name, except columns, which keep their table order.

Left out: golang-migrate's table, the audit ledger's schema (`migration_meta`), objects that belong to an extension,
and row-level security policies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from migrate_wrapper.postgres import ledger

if TYPE_CHECKING:
    import psycopg

EXCLUDED_SCHEMAS = ("pg_catalog", "information_schema", ledger.SCHEMA)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None
    comment: str | None


@dataclass
class Table:
    schema: str
    name: str
    kind: str  # table | partitioned table
    comment: str | None
    partition_of: str | None = None  # "parent FOR VALUES …" for a partition
    partition_key: str | None = None
    columns: list[Column] = field(default_factory=list)
    constraints: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, definition)
    indexes: list[tuple[str, str, str]] = field(default_factory=list)  # (name, definition, note)
    triggers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """How the classification file and the docs name it: bare in `public`, schema-qualified elsewhere."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Routine:
    signature: str
    kind: str
    returns: str | None
    language: str
    comment: str | None
    definition_sha256: str | None


@dataclass(frozen=True)
class Other:
    """A view, sequence, enum or domain: a name, what it is, and a one-line definition."""

    kind: str
    name: str
    definition: str
    comment: str | None = None


@dataclass
class Schema:
    schemas: list[str] = field(default_factory=list)  # user schemas other than public
    extensions: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    routines: list[Routine] = field(default_factory=list)
    others: list[Other] = field(default_factory=list)


# -- reading the catalog ---------------------------------------------------------------------------------------------
_NAMESPACES = """
    select n.oid from pg_catalog.pg_namespace n
    where n.nspname <> all(%(excluded)s) and n.nspname !~ '^pg_'
"""
_NOT_EXTENSION_MEMBER = """
    not exists (select 1 from pg_catalog.pg_depend d
                where d.classid = {catalog}::regclass and d.objid = {oid} and d.deptype = 'e')
"""


def describe(conn: psycopg.Connection, *, exclude: set[tuple[str, str]] = frozenset()) -> Schema:
    """The schema of the connected database; `exclude` holds (schema, table) pairs such as golang-migrate's table.

    Reads in one read-only snapshot, so a target is never changed and a concurrent migration cannot tear the view."""
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        conn.execute("select pg_catalog.set_config('search_path', 'pg_catalog', true)")
        return _describe(conn, exclude)


def _describe(conn: psycopg.Connection, exclude: set[tuple[str, str]]) -> Schema:
    args = {"excluded": list(EXCLUDED_SCHEMAS)}
    rel_filter = f"c.relnamespace in ({_NAMESPACES}) and " + _NOT_EXTENSION_MEMBER.format(
        catalog="'pg_catalog.pg_class'", oid="c.oid")
    result = Schema()
    result.schemas = sorted(
        r[0] for r in conn.execute(
            "select nspname from pg_catalog.pg_namespace n where n.oid in (" + _NAMESPACES + ") "
            "and nspname <> 'public'", args).fetchall()
    )
    result.extensions = sorted(
        r[0] for r in conn.execute("select extname from pg_catalog.pg_extension where extname <> 'plpgsql'")
    )

    tables: dict[int, Table] = {}
    for oid, schema, name, kind, comment, bound, parent, partkey in conn.execute(
        f"""select c.oid, n.nspname, c.relname, c.relkind, pg_catalog.obj_description(c.oid, 'pg_class'),
                   case when c.relispartition then pg_catalog.pg_get_expr(c.relpartbound, c.oid) end,
                   case when c.relispartition then (select i.inhparent::regclass::text from pg_catalog.pg_inherits i
                                                    where i.inhrelid = c.oid) end,
                   case when c.relkind = 'p' then pg_catalog.pg_get_partkeydef(c.oid) end
            from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and {rel_filter}""",
        args,
    ).fetchall():
        if (schema, name) in exclude:
            continue
        tables[oid] = Table(schema, name, "partitioned table" if kind == "p" else "table", comment,
                            partition_of=f"{parent} {bound}" if parent else None, partition_key=partkey)
    oids = list(tables)
    if oids:
        for oid, name, type_, notnull, default, identity, generated, collation, comment in conn.execute(
            """select a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                      case when a.attcollation <> t.typcollation then co.collname end,
                      pg_catalog.col_description(a.attrelid, a.attnum)
               from pg_catalog.pg_attribute a
               join pg_catalog.pg_type t on t.oid = a.atttypid
               left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               left join pg_catalog.pg_collation co on co.oid = a.attcollation
               where a.attrelid = any(%s) and a.attnum > 0 and not a.attisdropped
               order by a.attrelid, a.attnum""",
            (oids,),
        ).fetchall():
            if collation:
                type_ += f' collate "{collation}"'
            if identity:
                default = f"generated {'always' if identity == 'a' else 'by default'} as identity"
            elif generated == "s":
                default = f"generated always as ({default}) stored"
            tables[oid].columns.append(Column(name, type_, not notnull, default, comment))
        kinds = {"p": "primary key", "u": "unique", "f": "foreign key", "c": "check", "x": "exclusion"}
        for oid, kind, name, definition in conn.execute(
            """select conrelid, contype, conname, pg_catalog.pg_get_constraintdef(oid, true)
               from pg_catalog.pg_constraint where conrelid = any(%s) and contype in ('p', 'u', 'f', 'c', 'x')""",
            (oids,),
        ).fetchall():
            tables[oid].constraints.append((kinds[kind], name, definition))
        for oid, name, definition, valid, backs in conn.execute(
            """select i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid,
                      (select k.conname from pg_catalog.pg_constraint k
                       where k.conindid = i.indexrelid and k.conrelid = i.indrelid and k.contype in ('p', 'u', 'x'))
               from pg_catalog.pg_index i join pg_catalog.pg_class ic on ic.oid = i.indexrelid
               where i.indrelid = any(%s)""",
            (oids,),
        ).fetchall():
            # An index a failed CREATE INDEX CONCURRENTLY left behind is there but unused: say so.
            notes = ([] if valid else ["INVALID"]) + ([f"backs constraint `{backs}`"] if backs else [])
            tables[oid].indexes.append((name, definition, "; ".join(notes)))
        for oid, name, definition in conn.execute(
            """select tgrelid, tgname, pg_catalog.pg_get_triggerdef(oid, true) from pg_catalog.pg_trigger
               where tgrelid = any(%s) and not tgisinternal""",
            (oids,),
        ).fetchall():
            tables[oid].triggers.append((name, definition))
    for table in tables.values():
        table.constraints.sort(key=lambda c: (c[0], c[1]))
        table.indexes.sort()
        table.triggers.sort()
    result.tables = sorted(tables.values(), key=lambda t: (t.schema, t.name))

    for signature, kind, returns, language, comment, definition in conn.execute(
        f"""select p.oid::regprocedure::text, p.prokind,
                   case when p.prokind <> 'p' then pg_catalog.pg_get_function_result(p.oid) end, l.lanname,
                   pg_catalog.obj_description(p.oid, 'pg_proc'),
                   case when p.prokind in ('f', 'p', 'w') then pg_catalog.pg_get_functiondef(p.oid) end
            from pg_catalog.pg_proc p join pg_catalog.pg_language l on l.oid = p.prolang
            where p.pronamespace in ({_NAMESPACES})
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_catalog.pg_proc'", oid="p.oid")}""",
        args,
    ).fetchall():
        kind_name = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}[kind]
        digest = hashlib.sha256(definition.encode()).hexdigest() if definition else None
        result.routines.append(Routine(signature, kind_name, returns, language, comment, digest))
    result.routines.sort(key=lambda r: r.signature)

    others: list[Other] = []
    for kind, name, definition, comment in conn.execute(
        f"""select case c.relkind when 'v' then 'view' else 'materialized view' end, c.oid::regclass::text,
                   pg_catalog.pg_get_viewdef(c.oid, true), pg_catalog.obj_description(c.oid, 'pg_class')
            from pg_catalog.pg_class c where c.relkind in ('v', 'm') and {rel_filter}""",
        args,
    ).fetchall():
        others.append(Other(kind, name, "definition sha256 " + _short_sha(definition), comment))
    for name, type_, owned in conn.execute(
        f"""select c.oid::regclass::text, pg_catalog.format_type(s.seqtypid, null),
                   (select d.refobjid::regclass::text || '.' || a.attname from pg_catalog.pg_depend d
                    join pg_catalog.pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
                    where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'a')
            from pg_catalog.pg_class c join pg_catalog.pg_sequence s on s.seqrelid = c.oid
            where c.relkind = 'S' and {rel_filter}
              and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::regclass
                              and d.objid = c.oid and d.deptype = 'i')""",
        args,
    ).fetchall():
        others.append(Other("sequence", name, type_ + (f", owned by {owned}" if owned else "")))
    for kind, name, definition, comment in conn.execute(
        f"""select case t.typtype when 'e' then 'enum' else 'domain' end, t.oid::regtype::text,
                   case t.typtype
                     when 'e' then (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder)
                                    from pg_catalog.pg_enum e where e.enumtypid = t.oid)
                     else pg_catalog.format_type(t.typbasetype, t.typtypmod)
                          || case when t.typnotnull then ' not null' else '' end
                          || coalesce(' default ' || t.typdefault, '')
                          || coalesce((select ' ' || string_agg(pg_catalog.pg_get_constraintdef(k.oid, true), ' '
                                                                order by k.conname)
                                       from pg_catalog.pg_constraint k where k.contypid = t.oid), '')
                   end,
                   pg_catalog.obj_description(t.oid, 'pg_type')
            from pg_catalog.pg_type t
            where t.typtype in ('e', 'd') and t.typnamespace in ({_NAMESPACES})
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_catalog.pg_type'", oid="t.oid")}""",
        args,
    ).fetchall():
        others.append(Other(kind, name, definition or "", comment))
    result.others = sorted(others, key=lambda o: (o.kind, o.name))
    return result


def _short_sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()[:16]
