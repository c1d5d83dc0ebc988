"""`migrate-wrapper lint` end to end: the real CLI, squawk and git (temporary repositories); no database."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, error_lines, invoke

CLASSIFICATION = """\
components:
  operational:
    tables:
      accounts:
        columns:
          id: {classification: internal}
          email: {classification: restricted, encryption: "at rest", retention: "while the account exists"}
  analytics: {tables: {}}
"""
ACCOUNTS = {
    "202611010900_create_accounts.up.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\n",
    "202611010900_create_accounts.down.sql": "DROP TABLE accounts;\n",
}
INDEX = {
    "202611050900_index_accounts_email.up.sql": "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n",
    "202611050900_index_accounts_email.down.sql": "DROP INDEX CONCURRENTLY accounts_email_idx;\n",
}


def add_phone(version: str) -> dict[str, str]:
    return {f"{version}_add_accounts_phone.up.sql": "ALTER TABLE accounts ADD COLUMN phone text;\n",
            f"{version}_add_accounts_phone.down.sql": "ALTER TABLE accounts DROP COLUMN phone;\n"}


@pytest.fixture
def make(project):
    """A project root with the repository's .squawk.toml and, unless told otherwise, a classification file."""

    def build(operational: dict[str, str], *, classified: bool = True) -> Path:
        root = project({"operational": operational})
        shutil.copy(ROOT / ".squawk.toml", root / ".squawk.toml")
        if classified:
            (root / "configs").mkdir()
            (root / "configs" / "data-classification.yml").write_text(CLASSIFICATION)
        return root

    return build


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=Lint Test", "-c", "user.email=lint@example.com",
         "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()


def repository(root: Path, branch: str = "main") -> Path:
    """Commit everything on `branch`, then continue on a feature branch."""
    git(root, "init", "-q", "-b", branch)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "feature")
    return root


def write(root: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        (root / "db" / "migrations" / "operational" / name).write_text(body)


def lint_json(root: Path, *args: str) -> tuple[int, dict]:
    result = invoke("lint", "--format", "json", *args, root=root)
    return result.returncode, json.loads(result.stdout)


def test_the_shipped_migrations_lint_clean():
    result = invoke("lint")
    assert result.returncode == 0, result.output
    assert " 0 error(s)" in result.stdout
    assert result.stderr == ""


def test_errors_exit_1_grouped_by_file_with_one_error_line(make):
    root = make({**ACCOUNTS, "202611020900_drop_email.up.sql": "-- drop\nALTER TABLE accounts DROP COLUMN email;\n",
                 "202611020900_drop_email.down.sql": "ALTER TABLE accounts ADD COLUMN email text;\n"})
    result = invoke("lint", root=root)
    assert result.returncode == 1
    assert error_lines(result) == ["error: lint found 1 error(s) in 1 file(s) and 1 warning(s)"]
    lines = result.stdout.splitlines()
    header = lines.index("db/migrations/operational/202611020900_drop_email.up.sql")
    assert lines[header + 1].split()[:3] == ["2", "error", "destructive:"]
    assert "migrate:allow-destructive" in lines[header + 2]
    assert lines[0] == "(project)" and "base-unavailable" in lines[1]  # a temporary folder: no git, no base


def test_an_annotated_drop_passes_with_a_warning(make):
    root = make({**ACCOUNTS, "202611020900_drop_email.up.sql":
                 "-- migrate:allow-destructive email moved to the identity service\n"
                 "ALTER TABLE accounts DROP COLUMN email;\n",
                 "202611020900_drop_email.down.sql": "ALTER TABLE accounts ADD COLUMN email text;\n"})
    code, document = lint_json(root)
    assert code == 0
    assert [(f["rule"], f["level"]) for f in document["findings"] if f["file"]] == [
        ("destructive-allowed", "warning")]


def test_json_document_shape(make):
    root = make({**ACCOUNTS, **INDEX, **add_phone("202611060900"),
                 "202611070900_index_accounts_phone.up.sql": "CREATE INDEX accounts_phone_idx ON accounts (phone);\n",
                 "202611070900_index_accounts_phone.down.sql": "DROP INDEX accounts_phone_idx;\n"})
    result = invoke("lint", "--format", "json", "--component", "operational", root=root)
    assert result.returncode == 1
    document = json.loads(result.stdout)  # stdout holds the document alone, also on failure
    assert list(document) == ["ok", "errors", "warnings", "components", "files_checked", "base", "findings"]
    assert (document["ok"], document["components"], document["files_checked"]) == (False, ["operational"], 8)
    assert document["base"]["commit"] is None and "no merge base" in document["base"]["skipped"]
    for finding in document["findings"]:
        assert list(finding) == ["level", "rule", "message", "file", "line", "column", "advice", "component"]
    by_rule = {f["rule"]: f for f in document["findings"]}
    assert by_rule["unclassified-column"]["file"].endswith("202611060900_add_accounts_phone.up.sql")
    squawk = by_rule["squawk/require-concurrent-index-creation"]
    assert (squawk["level"], squawk["line"], squawk["column"], squawk["component"]) == ("error", 1, 1, "operational")
    assert squawk["advice"]
    assert sorted(f["rule"] for f in document["findings"] if f["level"] == "error") == [
        "squawk/require-concurrent-index-creation", "squawk/require-concurrent-index-deletion", "unclassified-column"]
    assert document["errors"] == 3


def test_without_a_classification_file_one_warning(make):
    root = make({**ACCOUNTS, **add_phone("202611060900")}, classified=False)
    code, document = lint_json(root)
    assert code == 0
    assert [f["message"] for f in document["findings"] if f["rule"] == "classification-missing"] == [
        "configs/data-classification.yml does not exist: new columns were not checked"]


def test_a_malformed_classification_file_is_an_error(make):
    root = make(ACCOUNTS)
    (root / "configs" / "data-classification.yml").write_text("tables: {}\n")
    code, document = lint_json(root)
    assert code == 1
    [finding] = [f for f in document["findings"] if f["level"] == "error"]
    assert (finding["rule"], finding["file"]) == ("classification-invalid", "configs/data-classification.yml")


def test_usage_errors_exit_2(make, tmp_path):
    root = make(ACCOUNTS)
    for args in (["--component", "billing"], ["--base", "nope"]):
        result = invoke("lint", *args, root=root)
        assert result.returncode == 2, result.output
        assert len(error_lines(result)) == 1
    (root / ".squawk.toml").unlink()
    result = invoke("lint", root=root)
    assert result.returncode == 2 and ".squawk.toml does not exist" in error_lines(result)[0]


# --- against the base branch (temporary git repositories) ---------------------------------------------------------


def test_a_later_new_migration_passes_against_the_merge_base(make):
    root = repository(make({**ACCOUNTS, **INDEX}))
    git(root, "checkout", "-q", "main")  # main moves on after the branch point: the merge base stays put
    write(root, add_phone("202611200900"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "later on main")
    git(root, "checkout", "-q", "feature")
    write(root, {**add_phone("202611060900")})
    code, document = lint_json(root)
    assert document["base"]["ref"] == "merge-base(HEAD, main)"
    assert document["base"]["commit"] == git(root, "rev-parse", "main~1")
    assert [f["rule"] for f in document["findings"] if f["level"] == "error"] == ["unclassified-column"]
    assert code == 1  # the new column; the committed ones are on the base and not checked again


def test_a_new_migration_sorting_before_the_base_fails(make):
    root = repository(make({**ACCOUNTS, **INDEX}))
    write(root, {"202611020900_late.up.sql": "SELECT 1;\n", "202611020900_late.down.sql": "SELECT 1;\n"})
    code, document = lint_json(root)
    assert code == 1
    [finding] = [f for f in document["findings"] if f["level"] == "error"]
    assert finding["rule"] == "base-order"
    assert finding["file"] == "db/migrations/operational/202611020900_late.up.sql"
    assert "202611050900_index_accounts_email" in finding["message"]


def test_an_edited_migration_from_the_base_fails(make):
    root = repository(make({**ACCOUNTS, **INDEX}))
    write(root, {"202611010900_create_accounts.up.sql": ACCOUNTS["202611010900_create_accounts.up.sql"] + "-- x\n"})
    code, document = lint_json(root, "--base", "main")
    assert code == 1
    assert document["base"]["ref"] == "main"
    assert [(f["rule"], f["file"]) for f in document["findings"]] == [
        ("base-changed", "db/migrations/operational/202611010900_create_accounts.up.sql")]


def test_committed_changes_on_the_branch_count_too(make):
    root = repository(make({**ACCOUNTS, **INDEX}))
    (root / "db" / "migrations" / "operational" / "202611050900_index_accounts_email.down.sql").unlink()
    git(root, "commit", "-q", "-am", "remove a down file")
    result = invoke("lint", root=root)
    assert result.returncode == 1
    assert "exists on merge-base(HEAD, main) but not here" in result.stdout
    assert "202611050900_index_accounts_email.down.sql" in result.stdout  # the change to history is the error


def test_without_main_the_base_rules_are_skipped_with_a_warning(make):
    root = repository(make({**ACCOUNTS, **INDEX}), branch="trunk")
    write(root, {"202611020900_late.up.sql": "SELECT 1;\n", "202611020900_late.down.sql": "SELECT 1;\n"})
    result = invoke("lint", root=root)
    assert result.returncode == 0, result.output
    assert "base-unavailable: base rules skipped: no merge base of HEAD with main or origin/main" in result.stdout
    assert "without base rules" in result.stdout.splitlines()[-1]
    assert invoke("lint", "--base", "trunk", root=root).returncode == 1  # the same file, against a base


ADOPTED = {  # a history written for another project: its own ids, a drop without annotation, up-only files
    "1_create_tables.up.sql": "CREATE TABLE people (id bigint PRIMARY KEY, name text);\n",
    "1_create_tables.down.sql": "DROP TABLE people;\n",
    "2_drop_name.up.sql": "ALTER TABLE people DROP COLUMN name;\n",
    "2_drop_name.down.sql": "ALTER TABLE people ADD COLUMN name text;\n",
    "10_index.up.sql": "CREATE INDEX people_id_idx ON people (id);\n",
}


def test_an_adopted_history_is_not_judged_again_only_what_a_change_adds(make):
    root = repository(make(ADOPTED, classified=False))
    clean = invoke("lint", "-c", "operational", root=root)
    assert clean.returncode == 0, clean.stdout  # history on the base: not re-judged
    audit = invoke("lint", "-c", "operational", "--all", root=root)
    assert audit.returncode == 1
    for finding in ("1_create_tables.up.sql", "2_drop_name.up.sql", "10_index has no down file"):
        assert finding in audit.stdout, audit.stdout
    write(root, {"11_drop_people.up.sql": "DROP TABLE people;\n", "11_drop_people.down.sql": "SELECT 1;\n"})
    added = invoke("lint", "-c", "operational", root=root)
    assert added.returncode == 1
    assert "11_drop_people" in added.stdout and "2_drop_name" not in added.stdout
    write(root, {"10_index.down.sql": "DROP TABLE people;\n"})  # a new file for a version already on the base
    assert "10_index.down.sql" in invoke("lint", "-c", "operational", root=root).stdout


def test_concurrently_advice_never_contradicts_the_files_own_transaction(make):
    root = repository(make(ACCOUNTS, classified=False))
    write(root, {
        "202611060900_two_indexes.up.sql": "CREATE INDEX accounts_a ON accounts (email);\n"
                                           "CREATE INDEX accounts_b ON accounts (id, email);\n",
        "202611060900_two_indexes.down.sql": "DROP INDEX accounts_b;\nDROP INDEX accounts_a;\n",
        "202611070900_scratch.up.sql": "CREATE TABLE scratch (id bigint);\nCREATE INDEX scratch_id ON scratch (id);\n",
        "202611070900_scratch.down.sql": "DROP INDEX scratch_id;\nDROP TABLE scratch;\n",
    })
    code, doc = lint_json(root, "-c", "operational")
    concurrent = [f for f in doc["findings"] if f["rule"].startswith("squawk/require-concurrent")]
    assert concurrent, doc["findings"]
    for finding in concurrent:  # several statements: "add CONCURRENTLY" alone would fail in the file's transaction
        assert "migration of its own" in finding["advice"]
    assert not [f for f in concurrent if "scratch.down" in f["file"]]  # the index of the table the file drops
    assert any(f["level"] == "error" and "two_indexes.up" in f["file"] for f in concurrent)
    assert any(f["level"] == "error" and "two_indexes.down" in f["file"] for f in concurrent)  # a live table's


def test_the_house_naming_rule_is_the_projects_setting(make):
    root = repository(make(ACCOUNTS, classified=False))
    write(root, {"300000000001_next.up.sql": "SELECT 1;\n", "300000000001_next.down.sql": "SELECT 1;\n"})
    assert "not a real date and time" in invoke("lint", "-c", "operational", root=root).stdout
    project_file = root / "migrate-wrapper.toml"
    project_file.write_text(project_file.read_text().replace('names = "house"', 'names = "golang-migrate"'))
    result = invoke("lint", "-c", "operational", root=root)
    assert result.returncode == 0, result.stdout  # any id golang-migrate accepts
