"""The real squawk binary (from the squawk-cli wheel) with the project's .squawk.toml: what lint relies on."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from migrate_wrapper.errors import UsageError
from migrate_wrapper.lint import squawk

ROOT = Path(__file__).resolve().parents[2]
FILE = "db/migrations/operational/202611060900_index_accounts.up.sql"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copy(ROOT / ".squawk.toml", tmp_path / ".squawk.toml")
    (tmp_path / FILE).parent.mkdir(parents=True)
    return tmp_path


def test_the_wheel_installs_squawk_beside_the_interpreter():
    assert Path(squawk.squawk_binary()) == Path(sys.executable).parent / "squawk"  # not one found on PATH


def test_squawk_lines_are_zero_based_and_lint_makes_them_one_based(root):
    # Line 3 (1-based) holds the index; squawk reports it as line 2.
    (root / FILE).write_text("-- index accounts\n-- (not concurrently)\n"
                             "CREATE INDEX accounts_email_idx ON accounts (email);\n")
    report = squawk.run_squawk(root, [FILE])
    assert [(item["rule_name"], item["line"], item["column"]) for item in report] == [
        ("require-concurrent-index-creation", 2, 0)]
    found = squawk.squawk_findings(report, {FILE: "operational"})
    assert [(f.rule, f.level, f.line, f.column, f.component) for f in found] == [
        ("squawk/require-concurrent-index-creation", "error", 3, 1, "operational")]
    assert "concurrently" in found[0].advice


def test_the_project_config_excludes_what_golang_migrate_and_lint_already_cover(root):
    # Without the config these raise require-lock-timeout, require-statement-timeout, prefer-robust-stmts and
    # ban-drop-table; the destructive DROP TABLE is lint's own rule.
    (root / FILE).write_text("CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n")
    assert squawk.run_squawk(root, [FILE]) == []
    (root / FILE).write_text("DROP TABLE accounts;\nCREATE TABLE t (id bigint);\n")
    assert squawk.run_squawk(root, [FILE]) == []


def test_a_squawk_ignore_comment_accepts_one_finding(root):
    (root / FILE).write_text("-- squawk-ignore require-concurrent-index-creation\n"
                             "CREATE INDEX a_idx ON accounts (email);\nCREATE INDEX b_idx ON accounts (id);\n")
    assert [item["line"] for item in squawk.run_squawk(root, [FILE])] == [2]


def test_a_missing_config_is_a_usage_error(root):
    (root / ".squawk.toml").unlink()
    (root / FILE).write_text("SELECT 1;\n")
    with pytest.raises(UsageError, match=r"\.squawk\.toml does not exist"):
        squawk.run_squawk(root, [FILE])


def test_a_config_squawk_refuses_is_a_usage_error_not_a_finding(root):
    (root / ".squawk.toml").write_text('excluded_rules = ["no-such-rule"]\n')
    (root / FILE).write_text("SELECT 1;\n")
    with pytest.raises(UsageError, match="squawk failed .*no-such-rule"):
        squawk.run_squawk(root, [FILE])
