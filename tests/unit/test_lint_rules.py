"""Each lint rule triggered and not triggered, on plain names and SQL text (no disk, git or squawk)."""

from __future__ import annotations

import hashlib

import pytest

from migrate_wrapper.lint import rules as lint
from migrate_wrapper.lint import squawk
from migrate_wrapper.lint.report import ERROR, WARNING, Base, Finding, Report
from migrate_wrapper.lint.rules import SqlFile
from migrate_wrapper.sql.sqlinfo import TypeSpec

FOLDER = "db/migrations/operational"
ACCOUNTS = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\n"


def rules_of(findings: list[Finding], level: str | None = None) -> list[str]:
    return [f.rule for f in findings if level is None or f.level == level]


def names_findings(*names: str) -> list[Finding]:
    return lint.check_names("operational", FOLDER, names)[0]


def sql_findings(migrations: dict[str, tuple[str, str]]) -> list[Finding]:
    """migrations: id → (up text, down text)."""
    files: dict[str, SqlFile] = {}
    for version_id, (up, down) in migrations.items():
        files[f"{version_id}.up.sql"] = SqlFile(f"{version_id}.up.sql", up)
        files[f"{version_id}.down.sql"] = SqlFile(f"{version_id}.down.sql", down)
    _, pairs = lint.check_names("operational", FOLDER, files)
    return lint.check_sql("operational", FOLDER, pairs, files)


# --- names and pairs ----------------------------------------------------------------------------------------------


def test_a_well_named_pair_passes():
    found, pairs = lint.check_names("operational", FOLDER, ["202611010900_create_accounts.up.sql",
                                                           "202611010900_create_accounts.down.sql", "README.md"])
    assert found == []
    assert [(p.id, p.up, p.down) for p in pairs] == [
        ("202611010900_create_accounts", "202611010900_create_accounts.up.sql",
         "202611010900_create_accounts.down.sql")]


@pytest.mark.parametrize("name, words", [
    ("20261101_create_accounts", "YYYYMMDDHHMM_slug"),
    ("202611010900_Create_Accounts", "YYYYMMDDHHMM_slug"),
    ("202613010900_create_accounts", "not a real date"),
    ("202611312400_create_accounts", "not a real date"),
])
def test_names_must_be_house_ids_with_real_timestamps(name, words):
    found = names_findings(f"{name}.up.sql", f"{name}.down.sql")
    assert rules_of(found) == ["file-name", "file-name"]
    assert all(words in f.message for f in found)
    assert found[0].file == f"{FOLDER}/{name}.down.sql"


def test_sql_files_golang_migrate_would_ignore_are_errors():
    found = names_findings("create_accounts.sql", "202611010900_a.up.sql.bak", "202611010900_a.down.sql.bak")
    assert sorted(rules_of(found)) == ["file-name"] * 3
    assert any("ignores it silently" in f.message for f in found)
    assert any("extension .sql.bak" in f.message for f in found)


def test_up_and_down_must_pair_with_one_slug():
    found = names_findings("202611010900_a.up.sql", "202611020900_b.down.sql",
                           "202611030900_c.up.sql", "202611030900_d.down.sql")
    messages = sorted(f.message for f in found if f.rule == "file-pair")
    assert messages == [
        "202611010900_a has no down file",
        "202611020900_b has no up file",
        "the up and down files of version 202611030900 have different slugs (202611030900_c / 202611030900_d)",
    ]


def test_duplicate_versions_are_errors():
    found = names_findings("202611010900_a.up.sql", "202611010900_a.down.sql", "202611010900_b.up.sql")
    assert rules_of(found) == ["duplicate-version"]
    assert "two up files" in found[0].message


# --- SQL: parse and CONCURRENTLY -------------------------------------------------------------------------------------


def test_sql_that_does_not_parse_is_an_error_on_its_line():
    found = sql_findings({"202611010900_a": ("SELECT 1;\n\nCREATE TABL x (a int);\n", "SELECT 1;\n")})
    assert rules_of(found) == ["parse-error"]
    assert (found[0].line, found[0].file) == (3, f"{FOLDER}/202611010900_a.up.sql")
    assert "TABL" in found[0].message


def test_concurrently_alone_passes_and_with_company_fails():
    alone = "-- only statement\nCREATE INDEX CONCURRENTLY a_idx ON a (x);\n"
    assert sql_findings({"202611010900_a": (alone, "DROP INDEX CONCURRENTLY a_idx;\n")}) == []
    crowded = "CREATE TABLE b (x bigint);\nCREATE INDEX CONCURRENTLY a_idx ON a (x);\n"
    found = sql_findings({"202611010900_a": (crowded, "DROP INDEX a_idx;\n")})
    assert rules_of(found) == ["concurrently-alone"]
    assert (found[0].level, found[0].line) == (ERROR, 2)


def test_own_begin_commit_is_a_warning():
    found = sql_findings({"202611010900_a": ("CREATE TABLE a (x bigint);\nCOMMIT;\nCREATE TABLE b (x bigint);\n",
                                             "DROP TABLE b;\nDROP TABLE a;\n")})
    assert [(f.rule, f.level, f.line) for f in found] == [("transaction-control", WARNING, 2)]


def test_a_file_wrapped_whole_in_one_begin_commit_is_not_warned():
    # Still one transaction: a failure inside leaves it aborted, and nothing of it commits.
    found = sql_findings({"202611010900_a": ("BEGIN;\nCREATE TABLE b (x bigint);\nCOMMIT;\n", "DROP TABLE b;\n")})
    assert found == []


def test_enum_to_text_is_no_narrowing():
    found = sql_findings({
        "202611010900_a": ("CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE p (m mood);\n",
                           "DROP TABLE p;\nDROP TYPE mood;\n"),
        "202611020900_b": ("ALTER TABLE p ALTER COLUMN m TYPE text;\n", "SELECT 1;\n"),
    })
    assert [f.rule for f in found] == []


def test_a_file_that_is_not_utf8_is_an_error():
    files = {"202611010900_a.up.sql": SqlFile("202611010900_a.up.sql", None),
             "202611010900_a.down.sql": SqlFile("202611010900_a.down.sql", "SELECT 1;")}
    _, pairs = lint.check_names("operational", FOLDER, files)
    assert rules_of(lint.check_sql("operational", FOLDER, pairs, files)) == ["encoding"]


# --- destructive statements ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statement, words", [
    ("DROP TABLE accounts;", "DROP TABLE accounts"),
    ("ALTER TABLE accounts DROP COLUMN email;", "DROP COLUMN accounts.email"),
    ("TRUNCATE accounts;", "TRUNCATE accounts"),
    ("DELETE FROM accounts;", "DELETE FROM accounts without WHERE"),
    ("ALTER TABLE accounts ALTER COLUMN email TYPE varchar(50);", "ALTER TYPE accounts.email from text to varchar(50)"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE integer;", "from int8 to int4"),
])
def test_destructive_statements_are_errors_without_an_annotation(statement, words):
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_change": (f"-- change\n{statement}\n", "SELECT 1;\n"),
    })
    assert [(f.rule, f.level, f.line, f.file) for f in found] == [
        ("destructive", ERROR, 2, f"{FOLDER}/202611020900_change.up.sql")]
    assert words in found[0].message
    assert "migrate:allow-destructive" in found[0].advice


@pytest.mark.parametrize("statement", [
    "DELETE FROM accounts WHERE email = '';",
    "ALTER TABLE accounts ALTER COLUMN id TYPE numeric;",
    "ALTER TABLE accounts ALTER COLUMN email TYPE varchar;",
    "ALTER TABLE accounts ADD COLUMN name text;",
    "UPDATE accounts SET email = lower(email);",
])
def test_safe_statements_are_not_destructive(statement):
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_change": (statement, "SELECT 1;\n"),
    })
    assert found == []


def test_an_annotation_with_a_reason_turns_the_errors_into_warnings():
    up = "-- migrate:allow-destructive accounts moved to the identity service (TICKET-12)\nDROP TABLE accounts;\n"
    found = sql_findings({"202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
                          "202611020900_drop_accounts": (up, ACCOUNTS)})
    assert [(f.rule, f.level, f.line) for f in found] == [("destructive-allowed", WARNING, 2)]
    assert "TICKET-12" in found[0].message


def test_an_annotation_without_a_reason_does_not_count():
    up = "-- migrate:allow-destructive\nDROP TABLE accounts;\n"
    found = sql_findings({"202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
                          "202611020900_drop_accounts": (up, ACCOUNTS)})
    assert sorted((f.rule, f.level, f.line) for f in found) == [
        ("annotation-reason", ERROR, 1), ("destructive", ERROR, 2)]


def test_an_annotation_with_nothing_destructive_is_a_warning():
    found = sql_findings({"202611010900_a": ("-- migrate:allow-destructive just in case\nSELECT 1;\n", "SELECT 1;")})
    assert [(f.rule, f.level) for f in found] == [("unused-annotation", WARNING)]


def test_a_down_file_may_drop_what_its_up_file_created():
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_add_name": ("ALTER TABLE accounts ADD COLUMN name text;\n",
                                  "ALTER TABLE accounts DROP COLUMN name;\n"),
    })
    assert found == []


def test_a_down_file_dropping_something_else_is_destructive():
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_add_name": ("ALTER TABLE accounts ADD COLUMN name text;\n",
                                  "ALTER TABLE accounts DROP COLUMN email;\n"),
    })
    assert [(f.rule, f.file) for f in found] == [("destructive", f"{FOLDER}/202611020900_add_name.down.sql")]


def test_a_down_file_narrowing_back_is_destructive():
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_widen": ("ALTER TABLE accounts ALTER COLUMN email TYPE text;\n"
                               "ALTER TABLE accounts ADD COLUMN n int;\n"
                               "ALTER TABLE accounts ALTER COLUMN n TYPE bigint;",
                               "ALTER TABLE accounts ALTER COLUMN n TYPE integer;\n"),
    })
    assert [(f.rule, f.file) for f in found] == [("destructive", f"{FOLDER}/202611020900_widen.down.sql")]
    assert "from int8 to int4" in found[0].message


def test_dropping_what_the_same_file_created_is_not_destructive():
    up = ("CREATE TABLE scratch (x bigint);\nINSERT INTO scratch VALUES (1);\n"
          "DELETE FROM scratch;\nDROP TABLE scratch;\n")
    assert sql_findings({"202611010900_a": (up, "SELECT 1;\n")}) == []


def test_types_follow_renames_across_migrations():
    found = sql_findings({
        "202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;\n"),
        "202611020900_rename": ("ALTER TABLE accounts RENAME TO users;\nALTER TABLE users RENAME email TO mail;\n",
                                "ALTER TABLE users RENAME mail TO email;\nALTER TABLE users RENAME TO accounts;\n"),
        "202611030900_widen": ("ALTER TABLE users ALTER COLUMN mail TYPE varchar;\n",
                               "ALTER TABLE users ALTER COLUMN mail TYPE text;\n"),
    })
    assert found == []


@pytest.mark.parametrize("old, new, wider", [
    (TypeSpec("int2"), TypeSpec("int4"), True),
    (TypeSpec("int4"), TypeSpec("int8"), True),
    (TypeSpec("int8"), TypeSpec("int4"), False),
    (TypeSpec("int8"), TypeSpec("numeric"), True),
    (TypeSpec("int8"), TypeSpec("numeric", (10,)), False),
    (TypeSpec("varchar", (10,)), TypeSpec("varchar", (20,)), True),
    (TypeSpec("varchar", (20,)), TypeSpec("varchar", (10,)), False),
    (TypeSpec("varchar", (20,)), TypeSpec("text"), True),
    (TypeSpec("text"), TypeSpec("varchar", (20,)), False),
    (TypeSpec("bpchar", (3,)), TypeSpec("varchar", (3,)), True),
    (TypeSpec("numeric", (10, 2)), TypeSpec("numeric", (12, 2)), True),
    (TypeSpec("numeric", (10, 2)), TypeSpec("numeric", (10, 3)), False),
    (TypeSpec("numeric", (10, 2)), TypeSpec("numeric"), True),
    (TypeSpec("numeric"), TypeSpec("numeric", (10, 2)), False),
    (TypeSpec("timestamptz", (6,)), TypeSpec("timestamptz", (3,)), False),
    (TypeSpec("text"), TypeSpec("text", array=True), False),
    (TypeSpec("timestamp"), TypeSpec("timestamptz"), False),
    (None, TypeSpec("text"), False),
])
def test_widening_conversions(old, new, wider):
    assert lint.widens(old, new) is wider


# --- against the base ------------------------------------------------------------------------------------------------


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


BASE = {"202611010900_a.up.sql": sha("a up"), "202611010900_a.down.sql": sha("a down"),
        "202611050900_b.up.sql": sha("b up"), "202611050900_b.down.sql": sha("b down"), "README.md": sha("old")}


def test_unchanged_base_and_a_later_migration_pass():
    current = {**BASE, "202611060900_c.up.sql": sha("c"), "202611060900_c.down.sql": sha("c"), "README.md": sha("x")}
    found, new = lint.check_base("operational", FOLDER, current, BASE, "main")
    assert found == []
    assert new == {202611060900}


def test_a_new_migration_sorting_before_the_base_is_an_error():
    current = {**BASE, "202611020900_c.up.sql": sha("c"), "202611020900_c.down.sql": sha("c")}
    found, new = lint.check_base("operational", FOLDER, current, BASE, "main")
    assert [(f.rule, f.file) for f in found] == [("base-order", f"{FOLDER}/202611020900_c.up.sql")]
    assert "202611050900_b" in found[0].message
    assert new == {202611020900}


def test_a_changed_or_removed_base_migration_is_an_error():
    current = {**BASE, "202611010900_a.up.sql": sha("a up, edited")}
    del current["202611050900_b.down.sql"]
    found, _ = lint.check_base("operational", FOLDER, current, BASE, "origin/main")
    assert sorted((f.rule, f.file) for f in found) == [
        ("base-changed", f"{FOLDER}/202611010900_a.up.sql"), ("base-changed", f"{FOLDER}/202611050900_b.down.sql")]
    changed = next(f for f in found if f.file.endswith("a.up.sql"))
    assert "changed since origin/main" in changed.message and sha("a up")[:12] in changed.message


def test_an_empty_base_makes_everything_new():
    found, new = lint.check_base("operational", FOLDER, BASE, {}, "main")
    assert found == [] and new == {202611010900, 202611050900}


# --- data classification -------------------------------------------------------------------------------------------


CLASSES = {"operational": {"accounts": {"id": "internal", "email": "restricted"}}}


def classification(migrations: dict[str, tuple[str, str]], new: set[int] | None) -> list[Finding]:
    files = {}
    for version_id, (up, down) in migrations.items():
        files[f"{version_id}.up.sql"] = SqlFile(f"{version_id}.up.sql", up)
        files[f"{version_id}.down.sql"] = SqlFile(f"{version_id}.down.sql", down)
    _, pairs = lint.check_names("operational", FOLDER, files)
    lint.check_sql("operational", FOLDER, pairs, files)
    return lint.check_classification("operational", FOLDER, pairs, files, new, CLASSES, "configs/c.yml")


def test_classified_columns_pass():
    assert classification({"202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;")}, None) == []


def test_a_new_unclassified_column_is_an_error_on_its_line():
    up = "-- add\nALTER TABLE accounts ADD COLUMN phone text;\n"
    found = classification({"202611010900_create_accounts": (ACCOUNTS, "DROP TABLE accounts;"),
                            "202611020900_add_phone": (up, "ALTER TABLE accounts DROP COLUMN phone;")}, None)
    assert [(f.rule, f.level, f.line) for f in found] == [("unclassified-column", ERROR, 2)]
    assert "accounts.phone" in found[0].message and "configs/c.yml" in found[0].message


def test_only_migrations_new_against_the_base_are_checked():
    migrations = {"202611010900_create_things": ("CREATE TABLE things (id bigint, label text);", "DROP TABLE things;")}
    assert len(classification(migrations, None)) == 2
    assert classification(migrations, {202611020900}) == []


def test_columns_dropped_or_renamed_by_later_new_migrations():
    migrations = {
        "202611010900_create_accounts": ("CREATE TABLE accounts (id bigint, tmp text, mail text);",
                                         "DROP TABLE accounts;"),
        "202611020900_tidy": ("ALTER TABLE accounts DROP COLUMN tmp;\nALTER TABLE accounts RENAME mail TO email;",
                              "SELECT 1;"),
    }
    assert classification(migrations, None) == []


def test_columns_lint_cannot_list_are_a_warning():
    found = classification({"202611010900_copy": ("CREATE TABLE copy AS SELECT 1 AS x;", "DROP TABLE copy;")}, None)
    assert [(f.rule, f.level) for f in found] == [("unclassified-column", WARNING)]


# --- squawk's report -----------------------------------------------------------------------------------------------


def squawk_item(rule: str, line: int = 0, column: int = 0, help: str | None = "do this") -> dict:
    return {"file": f"{FOLDER}/x.up.sql", "line": line, "column": column, "level": "Warning", "message": f"{rule}!",
            "help": help, "rule_name": rule, "line_end": line, "column_end": column + 3}


def test_squawk_findings_become_one_based_errors_with_advice():
    found = squawk.squawk_findings([squawk_item("require-concurrent-index-creation", 3, 4)],
                                 {f"{FOLDER}/x.up.sql": "operational"})
    assert found == [Finding(ERROR, "squawk/require-concurrent-index-creation", "require-concurrent-index-creation!",
                             f"{FOLDER}/x.up.sql", 4, 5, "do this", "operational")]


def test_advisory_squawk_rules_are_warnings():
    found = squawk.squawk_findings([squawk_item("prefer-bigint-over-int", help=None)], {})
    assert [(f.level, f.advice) for f in found] == [(WARNING, None)]


def test_squawk_syntax_errors_are_one_warning_per_file():
    found = squawk.squawk_findings([squawk_item("syntax-error"), squawk_item("syntax-error", 0, 9)], {})
    assert [(f.rule, f.level) for f in found] == [("squawk/syntax-error", WARNING)]


@pytest.mark.parametrize("document", [{"file": "x"}, ["not an object"]])
def test_a_malformed_squawk_report_is_refused(document):
    with pytest.raises(ValueError):
        squawk.squawk_findings(document, {})


# --- the report ----------------------------------------------------------------------------------------------------


def test_report_document_shape_and_order():
    report = Report(["operational"], Base("main", "abc123"), files=2, findings=[
        Finding(WARNING, "squawk/prefer-bigint-over-int", "w", "b.sql", 3, 1),
        Finding(ERROR, "destructive", "e", "a.sql", 9, None, "annotate", "operational"),
        Finding(WARNING, "base-unavailable", "skipped"),
    ])
    document = report.document()
    assert list(document) == ["ok", "errors", "warnings", "components", "files_checked", "base", "findings"]
    assert (document["ok"], document["errors"], document["warnings"]) == (False, 1, 2)
    assert document["base"] == {"ref": "main", "commit": "abc123", "skipped": None}
    assert [f["file"] for f in document["findings"]] == [None, "a.sql", "b.sql"]
    assert document["findings"][1] == {"level": "error", "rule": "destructive", "message": "e", "file": "a.sql",
                                       "line": 9, "column": None, "advice": "annotate", "component": "operational"}
    assert str(report.failure()) == "lint found 1 error(s) in 1 file(s) and 2 warning(s)"


def test_warnings_alone_are_ok():
    assert Report([], Base(None, None), findings=[Finding(WARNING, "x", "y")]).ok


@pytest.mark.parametrize("sql, atomic", [
    ("CREATE INDEX i ON t (a);", True),
    ("CREATE INDEX CONCURRENTLY i ON t (a);", False),
    ("DROP INDEX CONCURRENTLY i;", False),
    ("REINDEX (CONCURRENTLY) INDEX i;", False),
    ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY;", False),
    ("BEGIN; CREATE TABLE t (a int); COMMIT;", True),  # wrapped whole: still one transaction
    ("BEGIN; CREATE TABLE t (a int); COMMIT; CREATE TABLE u (a int);", False),  # a statement after it
    ("BEGIN; CREATE TABLE t (a int);", False),  # no COMMIT: the transaction golang-migrate's next one ends
    ("CREATE TABLE t (a int); COMMIT;", False),
])
def test_a_file_is_atomic_only_if_every_statement_can_run_in_one_transaction(sql, atomic):
    """Lock-timeout retries mark the previous version clean and run the file again: only safe for atomic files."""
    from migrate_wrapper.sql import sqlinfo

    assert sqlinfo.analyse(sql).atomic is atomic
