"""docs and validate-schema: each component's schema built from its migrations in a scratch database, written as
`db/schema/<component>.md`, plus the migration plan `db/migrations/migrations.md`; validate regenerates both into a
temporary folder, compares them with the committed files and checks the data classification covers the schema.

No target database is involved: everything comes from the migration files, the classification file and a scratch
database that is dropped afterwards.
"""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from migrate_wrapper.config import classification
from migrate_wrapper.schema import markdown
from migrate_wrapper.schema.build import build_schema
from migrate_wrapper.model import migrations
from migrate_wrapper.config.classification import ColumnClass
from migrate_wrapper.config import components
from migrate_wrapper.config.components import Component
from migrate_wrapper.errors import WrapperError
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.postgres.catalog import Schema
from migrate_wrapper.postgres.scratch import ScratchServer

CLASSIFICATION_FILE = Path("configs") / "data-classification.yml"
PLAN_FILE = Path("db") / "migrations" / "migrations.md"


def schema_file(component: Component) -> Path:
    return Path(component.schema_doc)


@dataclass
class Generated:
    files: dict[Path, str] = field(default_factory=dict)  # path relative to the project root → content
    schemas: dict[str, Schema] = field(default_factory=dict)


def load_classes(root: Path) -> dict[str, dict[str, dict[str, ColumnClass]]]:
    """The classification file, or nothing when there is none yet (every column then shows as unclassified)."""
    path = root / CLASSIFICATION_FILE
    return classification.load(path) if path.exists() else {}


def generate(root: Path, chosen: list[Component], *, binary: Binary, server: ScratchServer) -> Generated:
    """Every document for the chosen components; the plan always covers every component (it is one file)."""
    classes = load_classes(root)
    result = Generated()
    declared = components.load(root)
    sets = {c.name: migrations.scan(root / c.migrations_dir) for c in declared}
    for component in chosen:
        files = sets[component.name]
        newest = files.migrations[-1].version if files.migrations else None
        schema = build_schema(binary, server, component, files, newest)
        result.schemas[component.name] = schema
        result.files[schema_file(component)] = markdown.render_schema_doc(
            component.name, component.migrations_dir, files, schema, classes.get(component.name, {})
        )
    result.files[PLAN_FILE] = markdown.render_plan([(c.name, c.migrations_dir, sets[c.name]) for c in declared])
    return result


def write(generated: Generated, root: Path) -> list[Path]:
    written = []
    for relative, content in generated.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        written.append(relative)
    return written


def docs(root: Path, chosen: list[Component], *, binary: Binary, server: ScratchServer) -> list[Path]:
    """Write the documents into the project; returns their paths relative to `root`."""
    return write(generate(root, chosen, binary=binary, server=server), root)


# -- validate-schema -------------------------------------------------------------------------------------------------
class ValidationFailed(WrapperError):
    """The committed documents disagree with the migrations, or the classification does not cover the schema."""


@dataclass
class Validation:
    checked: list[Path]
    stale: list[Path] = field(default_factory=list)
    diff: str = ""
    problems: list[str] = field(default_factory=list)  # classification problems, one line each
    columns: int = 0  # columns classified

    @property
    def ok(self) -> bool:
        return not self.stale and not self.problems

    def error(self) -> ValidationFailed:
        parts = []
        if self.stale:
            parts.append(f"out of date: {', '.join(str(p) for p in self.stale)} (regenerate with `migrate-wrapper "
                         "docs`)")
        if self.problems:
            shown = "; ".join(self.problems[:5]) + (f"; … {len(self.problems) - 5} more" if len(self.problems) > 5
                                                    else "")
            parts.append(f"{len(self.problems)} classification problem(s): {shown}")
        return ValidationFailed("validate-schema: " + "; ".join(parts))


def validate(root: Path, chosen: list[Component], *, binary: Binary, server: ScratchServer) -> Validation:
    classes_path = root / CLASSIFICATION_FILE
    generated = generate(root, chosen, binary=binary, server=server)
    with tempfile.TemporaryDirectory(prefix="validate-schema-") as temp:
        regenerated = Path(temp)
        write(generated, regenerated)
        result = Validation(checked=list(generated.files))
        chunks = []
        for relative in generated.files:
            committed = root / relative
            old = committed.read_text(encoding="utf-8") if committed.exists() else ""
            new = (regenerated / relative).read_text(encoding="utf-8")
            if old != new:
                result.stale.append(relative)
                chunks.append("".join(difflib.unified_diff(
                    old.splitlines(keepends=True), new.splitlines(keepends=True),
                    fromfile=f"a/{relative}" if committed.exists() else "/dev/null", tofile=f"b/{relative}",
                )))
        result.diff = "".join(chunks)
    if not classes_path.exists():
        result.problems.append(f"{CLASSIFICATION_FILE} does not exist")
    classes = load_classes(root)
    for component in chosen:
        found, columns = coverage(component.name, generated.schemas[component.name], classes.get(component.name, {}))
        result.problems += found
        result.columns += columns
    declared = {c.name for c in components.load(root)}
    if {c.name for c in chosen} == declared:
        result.problems += [f"{CLASSIFICATION_FILE}: component {name!r} does not exist"
                            for name in sorted(set(classes) - declared)]
    return result


def coverage(component: str, schema: Schema, classes: dict[str, dict[str, ColumnClass]]) -> tuple[list[str], int]:
    """(problems, columns classified): every column of every table classified, restricted ones with encryption and
    retention, and no entry for a table or column that does not exist. Partitions share their parent's entry."""
    problems: list[str] = []
    classified = 0
    tables = {t.key: t for t in schema.tables if t.partition_of is None}
    for key, table in tables.items():
        entries = classes.get(key, {})
        for column in table.columns:
            cls = entries.get(column.name)
            where = f"{component}.{key}.{column.name}"
            if cls is None:
                problems.append(f"unclassified column {where}")
                continue
            classified += 1
            if cls.level == "restricted":
                missing = [k for k in ("encryption", "retention") if not getattr(cls, k)]
                if missing:
                    problems.append(f"restricted column {where} has no {' and no '.join(missing)} requirement")
        for name in sorted(set(entries) - {c.name for c in table.columns}):
            problems.append(f"classified column {component}.{key}.{name} does not exist")
    for key in sorted(set(classes) - set(tables)):
        problems.append(f"classified table {component}.{key} does not exist")
    return problems, classified
