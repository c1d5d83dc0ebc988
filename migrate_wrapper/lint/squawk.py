"""squawk, the PostgreSQL migration linter lint runs for the lock-safety rules: where its binary is, how it is run
over the judged files, and how its json report becomes findings (with its CONCURRENTLY advice made to fit
golang-migrate's one transaction per file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from migrate_wrapper.errors import UsageError, WrapperError
from migrate_wrapper.lint.report import ERROR, WARNING, Finding
from migrate_wrapper.lint.rules import SqlFile

SQUAWK_CONFIG = ".squawk.toml"
SQUAWK_TIMEOUT = 120

# squawk rules that give advice on types and names rather than on locks: shown as warnings, never blocking.
# Every other squawk finding is an error (its lock or client-compatibility hazard is the point of running it).
SQUAWK_ADVISORY = frozenset({
    "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity", "prefer-text-field",
    "prefer-timestamp-tz", "ban-char-field",
    "ban-drop-function",  # in a down file, the normal reverse of the up file's CREATE FUNCTION
    "unused-ignore",  # a stale `-- squawk-ignore` comment
})


def squawk_binary() -> str:
    """The binary the squawk-cli wheel installs next to this interpreter, else squawk on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("squawk")
    if found:
        return found
    raise UsageError("squawk not found (lint runs it for the lock-safety rules)",
                     hint="run `make setup`, or `pip install squawk-cli` into this environment")


def run_squawk(root: Path, paths: list[str]) -> object:
    """squawk's json report over `paths` (relative to root), with the project's .squawk.toml."""
    config = root / SQUAWK_CONFIG
    if not config.is_file():
        raise UsageError(f"{config} does not exist", hint="lint runs squawk with the project's rules from it")
    argv = [squawk_binary(), "--reporter", "json", "--config", str(config), *paths]
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, timeout=SQUAWK_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise WrapperError(f"squawk took longer than {SQUAWK_TIMEOUT}s") from None
    except OSError as exc:
        raise UsageError(f"cannot run squawk ({argv[0]}): {exc.strerror}") from None
    # Exit 1 means findings as well as failure: only a json list on stdout tells them apart.
    try:
        report = json.loads(proc.stdout.decode("utf-8", "replace"))
    except ValueError:
        report = None
    if proc.returncode not in (0, 1) or not isinstance(report, list):
        lines = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"squawk failed (exit {proc.returncode}): {lines[0] if lines else 'no output'}",
                         hint=f"check {SQUAWK_CONFIG}")
    return report


_CONCURRENT_RULES = {"squawk/require-concurrent-index-creation", "squawk/require-concurrent-index-deletion"}


def concurrency_advice(findings: list[Finding], files: Mapping[str, SqlFile]) -> list[Finding]:  # files: by path
    """squawk asks for CONCURRENTLY wherever an index is built or dropped; golang-migrate runs a file as one
    transaction, where CONCURRENTLY fails, so in a file of several statements that advice contradicts itself. An
    index on a table the same file creates or drops needs no care at all (the latter known from the CREATE INDEX
    that made it); elsewhere the advice is the one that holds: a file of its own."""
    # Which table each index is on, from every CREATE INDEX in the history: a DROP INDEX names only the index.
    index_on = {index: table for f in files.values() if f.info is not None for _, table, index in f.info.index_tables}
    out = []
    for finding in findings:
        sql_file = files.get(finding.file or "") if finding.rule in _CONCURRENT_RULES else None
        info = sql_file.info if sql_file is not None else None
        if info is None or info.statements < 2:
            out.append(finding)
            continue
        created = {c.table for c in info.changes if c.action.startswith("create_table")}
        dropped = {c.table for c in info.changes if c.action == "drop_table"}
        if any(line == finding.line and table in created for line, table, _ in info.index_tables):
            continue  # an index on a table this very file creates
        dropped_here = [index for line, index in info.dropped_indexes if line == finding.line]
        if dropped_here and all(index_on.get(index) in dropped for index in dropped_here):
            continue  # the index of a table this very file drops: nobody waits on it
        out.append(replace(finding, advice="move this index to a migration of its own and use CONCURRENTLY there (it "
                           "cannot run inside the file's one transaction)"))
    return out


def squawk_findings(items: object, components: Mapping[str, str]) -> list[Finding]:
    """squawk's json reporter output → findings. `components`: path as passed to squawk → component.

    squawk numbers lines and columns from 0. It is given only files PostgreSQL's parser (pglast) accepts, so a
    syntax error from squawk means its own parser gave up: one warning for the file, not an error.
    """
    if not isinstance(items, list):
        raise ValueError("squawk's json report is not a list")
    findings: list[Finding] = []
    unreadable: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("squawk's json report holds a non-object")
        path, rule = str(item.get("file", "")), str(item.get("rule_name", ""))
        line = item["line"] + 1 if isinstance(item.get("line"), int) else None
        column = item["column"] + 1 if isinstance(item.get("column"), int) else None
        if rule == "syntax-error":
            if path not in unreadable:
                unreadable.add(path)
                findings.append(Finding(
                    WARNING, "squawk/syntax-error",
                    f"squawk cannot parse this file ({item.get('message')}), so its lock-safety rules did not run "
                    "here (PostgreSQL's own parser accepts it)", path, line, column,
                    advice="review the file's locks by hand", component=components.get(path)))
            continue
        findings.append(Finding(
            WARNING if rule in SQUAWK_ADVISORY else ERROR, f"squawk/{rule}", str(item.get("message", "")).strip(),
            path, line, column, advice=(item.get("help") or None), component=components.get(path)))
    return findings
