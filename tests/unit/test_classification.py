"""configs/data-classification.yml: the documented format is read; anything else is one clear UsageError line."""

from pathlib import Path

import pytest

from migrate_wrapper.config import classification
from migrate_wrapper.config.classification import ColumnClass
from migrate_wrapper.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "classification.yml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path):
    path = write(tmp_path, """
components:
  operational:
    tables:
      accounts:
        columns:
          id: {classification: internal}
          email: {classification: restricted, encryption: "pgcrypto at rest / TLS in transit", retention: "deleted 30 days after account closure"}
""")
    assert classification.load(path) == {
        "operational": {"accounts": {
            "id": ColumnClass("internal"),
            "email": ColumnClass("restricted", "pgcrypto at rest / TLS in transit", "deleted 30 days after account closure"),
        }},
    }


def test_the_shipped_file_loads_and_every_restricted_column_has_both_requirements():
    classes = classification.load(ROOT / "configs" / "data-classification.yml")
    assert set(classes) == {"operational", "analytics"}
    restricted = [c for tables in classes.values() for cols in tables.values() for c in cols.values()
                  if c.level == "restricted"]
    assert restricted and all(c.encryption and c.retention for c in restricted)


def test_restricted_without_requirements_still_loads(tmp_path):
    """Coverage is validate-schema's judgement (exit 1 naming it), not a malformed file (exit 2)."""
    path = write(tmp_path, "components:\n  operational:\n    tables:\n      t:\n        columns:\n"
                           "          c: {classification: restricted}\n")
    assert classification.load(path)["operational"]["t"]["c"] == ColumnClass("restricted")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("components:\n  operational:\n    tables:\n      t:\n        columns:\n          c: {classification: secret}\n",
         "components.operational.tables.t.columns.c: classification must be one of public, internal, confidential, "
         "restricted (got 'secret')"),
        ("components:\n  operational:\n    tables:\n      t:\n        columns:\n"
         "          c: {classification: internal, retension: x}\n",
         "unknown key 'retension'"),
        ("components:\n  operational:\n    tables:\n      t:\n        columns:\n"
         "          c: {classification: internal}\n          c: {classification: public}\n",
         "duplicate key 'c'"),
        ("components:\n  operational:\n    tables:\n      t:\n        cols: {}\n",
         "components.operational.tables.t: expected exactly one key, `columns`"),
        ("tables: {}\n", "top level: expected exactly one key, `components`"),
        ("components:\n  operational:\n    tables:\n      t:\n        columns:\n          c: internal\n",
         "expected {classification: LEVEL"),
        ("components:\n  operational:\n    tables:\n      t:\n        columns:\n"
         "          c: {classification: restricted, encryption: ''}\n",
         "encryption must be a non-empty text"),
        ("components: [operational]\n", "components: expected a mapping"),
        ("components:\n  operational: {tables: {t: {columns: {c: {classification: internal}\n", "not valid YAML"),
        ("", "top level: expected exactly one key"),
    ],
)
def test_malformed_files_are_one_usage_error_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        classification.load(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        classification.load(tmp_path / "nope.yml")


def test_yaml_errors_name_the_line(tmp_path):
    path = write(tmp_path, "components:\n  operational:\n    tables:\n      t: [\n")
    with pytest.raises(UsageError, match=r"classification\.yml:\d+: not valid YAML"):
        classification.load(path)
