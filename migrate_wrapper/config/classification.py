"""Data classification of every column: `configs/data-classification.yml`, read and checked for shape only.

Whether the file covers the schema (unclassified columns, entries for columns that do not exist, restricted columns
without an encryption or retention requirement) is judged by `validate-schema` against a built schema; this module
only refuses a file it cannot read as the documented format (see the header of the YAML file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migrate_wrapper.errors import UsageError

LEVELS = ("public", "internal", "confidential", "restricted")
_COLUMN_KEYS = frozenset({"classification", "encryption", "retention"})

Classes = dict[str, dict[str, dict[str, "ColumnClass"]]]  # component → table → column → class


@dataclass(frozen=True)
class ColumnClass:
    level: str
    encryption: str | None = None
    retention: str | None = None


def load(path: Path) -> dict[str, dict[str, dict[str, ColumnClass]]]:
    """component → table → column → class; raises UsageError (one line) when the file is missing or malformed."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist",
                         hint="create it (format: see specs/003-database-schemas/plan.md)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}{where}: not valid YAML ({problem})") from None

    def bad(where: str, what: str) -> UsageError:
        return UsageError(f"{path}: {where}: {what}")

    if not isinstance(document, dict) or set(document) != {"components"}:
        raise bad("top level", "expected exactly one key, `components`")
    components = _mapping(document["components"], "components", bad)
    result: Classes = {}
    for component, body in components.items():
        body = _mapping(body, f"components.{component}", bad)
        if set(body) != {"tables"}:
            raise bad(f"components.{component}", "expected exactly one key, `tables`")
        tables = _mapping(body["tables"], f"components.{component}.tables", bad)
        result[component] = {}
        for table, table_body in tables.items():
            where = f"components.{component}.tables.{table}"
            table_body = _mapping(table_body, where, bad)
            if set(table_body) != {"columns"}:
                raise bad(where, "expected exactly one key, `columns`")
            columns = _mapping(table_body["columns"], f"{where}.columns", bad)
            result[component][table] = {
                column: _column(spec, f"{where}.columns.{column}", bad) for column, spec in columns.items()
            }
    return result


def _mapping(value: object, where: str, bad) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise bad(where, "expected a mapping with names as keys")
    return value


def _column(spec: object, where: str, bad) -> ColumnClass:
    if not isinstance(spec, dict):
        raise bad(where, "expected {classification: LEVEL, encryption: …, retention: …}")
    unknown = sorted(str(k) for k in spec if k not in _COLUMN_KEYS)
    if unknown:
        raise bad(where, f"unknown key {unknown[0]!r} (allowed: classification, encryption, retention)")
    level = spec.get("classification")
    if level not in LEVELS:
        raise bad(where, f"classification must be one of {', '.join(LEVELS)} (got {level!r})")
    texts = {}
    for key in ("encryption", "retention"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(where, f"{key} must be a non-empty text")
        texts[key] = value.strip() if isinstance(value, str) else None
    return ColumnClass(level, **texts)


def _strict_loader():
    """PyYAML's SafeLoader keeps the last of two equal keys silently: a duplicated column could hide a level."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN202 - PyYAML's signature
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader
