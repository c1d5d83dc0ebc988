"""Migration lint: the rules, and the report they add up to.

Pure over names and file contents (no disk, git or subprocess: gather.py collects those, squawk.py runs
squawk), so each rule is tested on plain strings. Errors fail `migrate-wrapper lint` (exit 1); warnings are shown and never block anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from migrate_wrapper.sql import sqlinfo
from migrate_wrapper.lint.report import ERROR, WARNING, Finding
from migrate_wrapper.model.migrations import GOLANG_MIGRATE_NAME, HOUSE_ID

ANNOTATION = "migrate:allow-destructive"
_ANNOTATION = re.compile(r"--[ \t]*migrate:allow-destructive\b[ \t:]*(.*)$", re.MULTILINE)
ANNOTATION_ADVICE = f"if it is intended, add `-- {ANNOTATION} <reason>` to the file"


# --- File names and pairs -----------------------------------------------------------------------------------------


@dataclass
class Pair:
    """One migration version: its up and down file names (in the component's folder)."""

    version: int
    id: str
    up: str | None = None
    down: str | None = None


def check_names(component: str, folder: str, names: Iterable[str], *, house: bool = True,
                ) -> tuple[list[Finding], list[Pair]]:
    """House names and real timestamps (unless the project turns the house rule off), up/down pairs, one slug per
    version: what golang-migrate would trip over."""
    findings: list[Finding] = []
    pairs: dict[int, Pair] = {}

    def error(name: str, rule: str, message: str, advice: str | None = None) -> None:
        findings.append(Finding(ERROR, rule, message, f"{folder}/{name}", advice=advice, component=component))

    for name in sorted(names):
        match = GOLANG_MIGRATE_NAME.match(name)
        if not match:
            if name.endswith(".sql"):
                error(name, "file-name", "not a migration file name: golang-migrate ignores it silently",
                      "name it YYYYMMDDHHMM_slug.up.sql / .down.sql")
            continue
        version_text, slug, direction, ext = match.groups()
        version_id = f"{version_text}_{slug}"
        if not house:
            pass
        elif not HOUSE_ID.match(version_id):
            error(name, "file-name", "name is not YYYYMMDDHHMM_slug (12 digits, lower-case slug of a-z, 0-9, _)")
        elif not _real_timestamp(version_text):
            error(name, "file-name", f"{version_text} is not a real date and time (YYYYMMDDHHMM)")
        if ext != "sql":
            error(name, "file-name", f"extension .{ext} is not .sql, but golang-migrate will run this file")
        version = int(version_text)  # golang-migrate parses the number: leading zeros collapse
        pair = pairs.setdefault(version, Pair(version, version_id))
        if getattr(pair, direction) is not None:
            error(name, "duplicate-version",
                  f"version {version_text} has two {direction} files ({getattr(pair, direction)} and {name}); "
                  "golang-migrate refuses to start", "give each migration its own timestamp")
            continue
        if pair.id != version_id:
            error(name, "file-pair", f"the up and down files of version {version_text} have different slugs "
                  f"({pair.id} / {version_id})")
        setattr(pair, direction, name)

    for pair in pairs.values():
        for direction, other in (("up", "down"), ("down", "up")):
            if getattr(pair, direction) is None:
                error(getattr(pair, other), "file-pair", f"{pair.id} has no {direction} file",
                      f"add {pair.id}.{direction}.sql" + (" (every migration must be reversible)"
                                                        if direction == "down" else ""))
    return findings, sorted(pairs.values(), key=lambda p: p.version)


def _real_timestamp(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d%H%M")
    except ValueError:
        return False
    return True


# --- Against the base branch ---------------------------------------------------------------------------------------


def check_base(component: str, folder: str, current: Mapping[str, str], base: Mapping[str, str],
               ref: str) -> tuple[list[Finding], set[int]]:
    """current/base: file name → sha256. Returns the findings and the versions that are new against the base."""
    findings: list[Finding] = []

    def versions(names: Iterable[str]) -> dict[int, str]:
        """version → the file to name it by (the up file when there is one)."""
        found: dict[int, str] = {}
        for name in sorted(names):
            match = GOLANG_MIGRATE_NAME.match(name)
            if match and (match.group(3) == "up" or int(match.group(1)) not in found):
                found[int(match.group(1))] = name
        return found

    # Only files golang-migrate runs: a README beside the migrations may change freely.
    base = {n: d for n, d in base.items() if GOLANG_MIGRATE_NAME.match(n)}
    current = {n: d for n, d in current.items() if GOLANG_MIGRATE_NAME.match(n)}
    on_base = versions(base)
    here = versions(current)
    new = set(here) - set(on_base)
    if on_base:
        newest = max(on_base)
        newest_id = on_base[newest].split(".", 1)[0]
        for version in sorted(v for v in new if v < newest):
            findings.append(Finding(
                ERROR, "base-order",
                f"new migration sorts before {newest_id}, already on {ref}: golang-migrate never applies a file "
                "below the applied version",
                f"{folder}/{here[version]}", advice="rename it (up and down) with a timestamp after that one",
                component=component,
            ))
    for name, digest in sorted(base.items()):
        if name not in current:
            message = (f"exists on {ref} but not here: a migration on the base may already be applied somewhere "
                       "(removed, renamed, or this branch is behind the base)")
            advice = "restore it, or rebase onto the base if it is new there"
        elif current[name] != digest:
            message = (f"changed since {ref} (sha256 {digest[:12]}… → {current[name][:12]}…): "
                       "databases that applied it will not see the change")
            advice = "restore it as on the base and put the change in a new migration"
        else:
            continue
        findings.append(Finding(ERROR, "base-changed", message, f"{folder}/{name}", advice=advice,
                                component=component))
    return findings, new


# --- SQL: parse, CONCURRENTLY, destructive statements -----------------------------------------------------------------


_LENGTH_MODS = {"varchar", "bpchar", "bit", "varbit", "timestamp", "timestamptz", "time", "timetz"}
# Conversions that keep every value (to an unbounded target; a bounded one is judged by its modifiers).
_WIDER = {
    "int2": {"int4", "int8", "numeric", "float4", "float8"},
    "int4": {"int8", "numeric", "float8"},
    "int8": {"numeric"},
    "float4": {"float8"},
    "varchar": {"text"},
    "bpchar": {"text", "varchar"},
    "text": {"varchar"},
}


def widens(old: sqlinfo.TypeSpec | None, new: sqlinfo.TypeSpec) -> bool:
    """True when every value of `old` fits `new` unchanged: always into unbounded text, which every value converts
    to (an enum, say); otherwise an unknown old type is never provably wider."""
    if old is not None and old.array == new.array and new.name in ("text", "varchar") and not new.mods:
        return True
    if old is None or old.array != new.array:
        return False
    if old.name == new.name:
        return _mods_widen(old.name, old.mods, new.mods)
    if new.name not in _WIDER.get(old.name, ()):
        return False
    if old.name == "bpchar" and new.name == "varchar" and new.mods:
        return bool(old.mods) and new.mods[0] >= old.mods[0]
    return not new.mods


def _mods_widen(name: str, old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    if old == new:
        return True
    if not new:
        return name in _LENGTH_MODS or name == "numeric"  # the limit is lifted
    if not old or -1 in old or -1 in new:
        return False  # a limit where there was none, or one we cannot read
    if name in _LENGTH_MODS:
        return new[0] >= old[0]
    if name == "numeric":
        (old_p, old_s), (new_p, new_s) = (old + (0,))[:2], (new + (0,))[:2]
        return new_s >= old_s and new_p - new_s >= old_p - old_s
    return False


@dataclass
class SqlFile:
    """One migration file as the SQL rules see it."""

    name: str
    text: str | None  # None: not UTF-8, or not read (skipped)
    info: sqlinfo.Details | None = None
    skipped: str | None = None  # why it was not analysed (its size)


Columns = dict[str, dict[str, sqlinfo.TypeSpec | None]]  # table → column → type, replayed file by file


def check_sql(component: str, folder: str, pairs: list[Pair], files: Mapping[str, SqlFile]) -> list[Finding]:
    """Every file parses; CONCURRENTLY stands alone; destructive statements carry an annotation with a reason.

    Up files are replayed in version order to know each column's type before an ALTER TYPE; a down file is judged
    against the state its up file left, and dropping what that up file created is the normal reverse, not an error.
    """
    findings: list[Finding] = []
    columns: Columns = {}
    for pair in pairs:
        up = files.get(pair.up) if pair.up else None
        down = files.get(pair.down) if pair.down else None
        created: set[tuple[str, str | None]] = set()
        for sql_file, reverses in ((up, False), (down, True)):
            if sql_file is None:
                continue
            path = f"{folder}/{sql_file.name}"
            if sql_file.skipped:
                findings.append(Finding(WARNING, "not-analysed", sql_file.skipped, path, component=component))
                continue
            if sql_file.text is None:
                findings.append(Finding(ERROR, "encoding", "not UTF-8 text", path, component=component))
                continue
            sql_file.info = info = sqlinfo.details(sql_file.text)
            found = _file_rules(info, path, component)
            found += _destructive(info, sql_file.text, path, component, columns,
                                  exempt=created if reverses else set(), replay=not reverses)
            findings += found
            if not reverses:
                created = {(c.table, None) for c in info.changes if c.action.startswith("create_table")}
                created |= {(c.table, c.column) for c in info.changes if c.action == "add_column"}
    return findings


def _file_rules(info: sqlinfo.Details, path: str, component: str) -> list[Finding]:
    if info.parse_error is not None:
        return [Finding(ERROR, "parse-error", f"does not parse: {info.parse_error}", path, info.parse_error_line,
                        component=component)]
    found = []
    if info.concurrently_lines and info.statements > 1:
        found.append(Finding(
            ERROR, "concurrently-alone",
            f"CONCURRENTLY must be the only statement in its file ({info.statements} here): golang-migrate runs a "
            "file as one implicit transaction, and CONCURRENTLY cannot run inside one",
            path, info.concurrently_lines[0], advice="move it to a migration of its own", component=component,
        ))
    if info.transaction_lines:
        found.append(Finding(
            WARNING, "transaction-control",
            "the file's own BEGIN/COMMIT ends golang-migrate's implicit transaction: a failure can leave it "
            "half-applied", path, info.transaction_lines[0],
            advice="drop BEGIN/COMMIT; golang-migrate already runs the file as one transaction", component=component,
        ))
    return found


def _annotations(text: str) -> list[tuple[int, str]]:
    """(line, reason) of each `-- migrate:allow-destructive <reason>`; the reason may be empty."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1).strip()) for m in _ANNOTATION.finditer(text)]


def _destructive(info: sqlinfo.Details, text: str, path: str, component: str, columns: Columns, *,
                 exempt: set[tuple[str, str | None]], replay: bool) -> list[Finding]:
    """Destructive statements of one file; `replay` applies the file's changes to `columns` (up files only)."""
    state = columns if replay else {t: dict(c) for t, c in columns.items()}
    annotations = _annotations(text)
    reasons = [(line, reason) for line, reason in annotations if reason]
    found = [Finding(ERROR, "annotation-reason", f"`{ANNOTATION}` needs a reason after it", path, line,
                     advice=f"write `-- {ANNOTATION} <why losing this data is intended>`", component=component)
             for line, reason in annotations if not reason]
    hazards: list[tuple[int, str]] = []
    created_here: set[str] = set()
    for change in info.changes:
        table, column = change.table, change.column
        own = table in created_here or (table, None) in exempt
        if change.action in ("create_table", "create_table_unlisted"):
            created_here.add(table)
            state[table] = {}
        elif change.action == "add_column":
            state.setdefault(table, {})[column] = change.type
        elif change.action == "drop_table":
            if not own:
                hazards.append((change.line, f"DROP TABLE {table} destroys the table and its data"))
            state.pop(table, None)
        elif change.action == "drop_column":
            if not own and (table, column) not in exempt:
                hazards.append((change.line, f"DROP COLUMN {table}.{column} destroys the column's data"))
            state.get(table, {}).pop(column, None)
        elif change.action == "truncate" and not own:
            hazards.append((change.line, f"TRUNCATE {table} deletes every row"))
        elif change.action == "delete_all" and not own:
            hazards.append((change.line, f"DELETE FROM {table} without WHERE deletes every row"))
        elif change.action == "alter_type":
            old = state.get(table, {}).get(column)
            if not own and change.type is not None and not widens(old, change.type):
                before = f"from {old}" if old is not None else "from a type these migrations do not show"
                hazards.append((change.line, f"ALTER TYPE {table}.{column} {before} to {change.type} can lose "
                                             "or reject data (a narrowing conversion)"))
            state.setdefault(table, {})[column] = change.type
        elif change.action == "rename_table" and change.new_name:
            state[change.new_name] = state.pop(table, {})
        elif change.action == "rename_column" and change.new_name:
            cols = state.setdefault(table, {})
            cols[change.new_name] = cols.pop(column, None)

    if hazards and reasons:
        reason = "; ".join(r for _, r in reasons)
        found += [Finding(WARNING, "destructive-allowed", f"{what} (allowed: {reason})", path, line,
                          component=component) for line, what in hazards]
    else:
        found += [Finding(ERROR, "destructive", what, path, line, advice=ANNOTATION_ADVICE, component=component)
                  for line, what in hazards]
    if reasons and not hazards:
        found.append(Finding(WARNING, "unused-annotation", f"`{ANNOTATION}` but nothing destructive in this file",
                             path, reasons[0][0], advice="remove the annotation", component=component))
    return found


# --- Data classification of new columns -------------------------------------------------------------------------------


def check_classification(component: str, folder: str, pairs: list[Pair], files: Mapping[str, SqlFile],
                         new: set[int] | None, classes: Mapping[str, Mapping[str, Mapping[str, object]]],
                         config: str) -> list[Finding]:
    """Columns that new migrations add (and that survive them) need an entry in the classification file.

    `new` is None when there is no base: every migration counts as new. Run after check_sql (it parses the files).
    """
    added: dict[tuple[str, str], tuple[str, int]] = {}  # (table, column) → where it was added
    unlisted: list[Finding] = []
    for pair in pairs:
        sql_file = files.get(pair.up) if pair.up else None
        if (new is not None and pair.version not in new) or sql_file is None or sql_file.info is None:
            continue
        path = f"{folder}/{sql_file.name}"
        for change in sql_file.info.changes:
            key = (change.table, change.column or "")
            if change.action == "add_column":
                added[key] = (path, change.line)
            elif change.action == "create_table_unlisted":
                unlisted.append(Finding(
                    WARNING, "unclassified-column",
                    f"the columns of {change.table} come from LIKE, INHERITS or AS: lint cannot list them",
                    path, change.line, advice=f"classify them in {config}; validate-schema checks the result",
                    component=component))
            elif change.action == "drop_table":
                added = {k: v for k, v in added.items() if k[0] != change.table}
            elif change.action == "drop_column":
                added.pop(key, None)
            elif change.action == "rename_table" and change.new_name:
                added = {((change.new_name if t == change.table else t), c): v for (t, c), v in added.items()}
            elif change.action == "rename_column" and change.new_name and key in added:
                added[(change.table, change.new_name)] = added.pop(key)

    tables = classes.get(component, {})
    findings = list(unlisted)
    for (table, column), (path, line) in sorted(added.items(), key=lambda item: item[1]):
        if column not in tables.get(table, {}):
            findings.append(Finding(
                ERROR, "unclassified-column", f"new column {table}.{column} is not classified in {config}",
                path, line, advice=f"add it under components.{component}.tables.{table}.columns with its "
                "classification (public, internal, confidential or restricted)", component=component))
    return findings
