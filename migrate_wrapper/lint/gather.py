"""Gather what lint/rules.py judges — the migration files, the same folders on the base
commit (git), squawk's report and the data classification — and return the report. Reads only; runs no migration.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from migrate_wrapper.lint import rules, squawk
from migrate_wrapper.lint.report import ERROR, WARNING, Base, Finding, Report
from migrate_wrapper.config import components
from migrate_wrapper.config.components import Component
from migrate_wrapper.errors import UsageError, WrapperError
from migrate_wrapper.model.migrations import GOLANG_MIGRATE_NAME, file_sha256, too_big

CLASSIFICATION = "configs/data-classification.yml"
DEFAULT_BASES = ("main", "origin/main")  # the merge base with the first that exists
GIT_TIMEOUT = 30


# Findings that stand whatever file is judged: golang-migrate refuses the folder, or the history itself changed.
ALWAYS = {"duplicate-version", "base-changed", "base-order"}


def lint(root: Path, chosen: list[Component], *, base: str | None = None, judge_all: bool = False,
         pending: dict[str, set[str]] | None = None) -> Report:
    """Lint judges what a change adds: the files new against the base (by name: a down file added to a version on
    the base is new). The base's history is not judged again — a history adopted from another project was never
    written to these rules — unless `judge_all`. A dry run (`pending`: component → the file names it would run) also
    judges what it would run. Without a base, and outside a dry run, every file is judged."""
    report = Report([c.name for c in chosen], resolve_base(root, base))
    if report.base.skipped:
        report.findings.append(Finding(WARNING, "base-unavailable",
                                             f"base rules skipped: {report.base.skipped}",
                                             advice="pass --base REF (e.g. origin/main)"))
    classes = _classification(root, report)
    squawk_paths: dict[str, str] = {}  # path → component
    by_path: dict[str, rules.SqlFile] = {}
    for component in chosen:
        folder = component.migrations_dir
        names = _names(root / folder)
        found: list[Finding] = []
        new: set[int] | None = None
        migration_names = {name for name in names if GOLANG_MIGRATE_NAME.match(name)}
        added: set[str] | None = None  # file names not on the base
        if report.base.commit:
            on_base = base_files(root, report.base.commit, folder)
            current = {name: _sha256(root / folder / name) for name in names}
            found, new = rules.check_base(component.name, folder, current, on_base, report.base.ref or "")
            added = migration_names - set(on_base)
        wanted = set(pending.get(component.name, ())) if pending is not None else None
        judged = None if judge_all or (added is None and wanted is None) else (added or set()) | (wanted or set())
        named, pairs = rules.check_names(component.name, folder, names, house=components.house_names(root))
        files = {name: _sql_file(root / folder / name) for name in migration_names}
        by_path.update({f"{folder}/{name}": f for name, f in files.items()})
        found += named + rules.check_sql(component.name, folder, pairs, files)
        if classes is not None:
            found += rules.check_classification(component.name, folder, pairs, files, new, classes, CLASSIFICATION)
        report.findings += [f for f in found if _judged(f, judged, None if judge_all else added)]
        report.files += sum(1 for name in files if judged is None or name in judged)
        # squawk gets the judged files PostgreSQL's parser accepts: the others already carry their one error.
        squawk_paths.update({f"{folder}/{f.name}": component.name for f in files.values()
                             if f.info is not None and f.info.parse_error is None
                             and (judged is None or f.name in judged)})
    if squawk_paths:
        report.findings += squawk.concurrency_advice(
            squawk.squawk_findings(squawk.run_squawk(root, list(squawk_paths)), squawk_paths), by_path)
    return report


def _judged(finding: Finding, judged: set[str] | None, added: set[str] | None) -> bool:
    """The naming rule is for files new against the base only; the others also for what a dry run would run."""
    if finding.rule in ALWAYS or not finding.file:
        return True
    name = os.path.basename(finding.file)
    if finding.rule == "file-name" and added is not None:
        return name in added
    return judged is None or name in judged


def _names(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise UsageError(f"migrations folder {folder} does not exist", hint="check --component and the project root")
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise UsageError(f"cannot read migrations folder {folder}: {exc.strerror}") from None


def _sql_file(path: Path) -> rules.SqlFile:
    if skipped := too_big(path):
        return rules.SqlFile(path.name, None, skipped=skipped)
    try:
        return rules.SqlFile(path.name, path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return rules.SqlFile(path.name, None)


def _sha256(path: Path) -> str:
    return file_sha256(path)


def _classification(root: Path, report: Report):
    """The classes, or None with one finding saying why the new-column rule cannot run."""
    from migrate_wrapper.config import classification

    path = root / CLASSIFICATION
    if not path.is_file():
        report.findings.append(Finding(WARNING, "classification-missing",
                                             f"{CLASSIFICATION} does not exist: new columns were not checked",
                                             advice="create it (components → tables → columns → {classification: …}) "
                                             "so that lint can check new columns"))
        return None
    try:
        return classification.load(path)
    except UsageError as exc:
        report.findings.append(Finding(ERROR, "classification-invalid",
                                             str(exc).replace(str(path), CLASSIFICATION), CLASSIFICATION))
        return None


# --- git: the base commit and its files ------------------------------------------------------------------------------


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes] | None:
    """None when git itself is missing."""
    try:
        return subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise WrapperError(f"git {args[0]} took longer than {GIT_TIMEOUT}s in {root}") from None


def _why(proc: subprocess.CompletedProcess[bytes] | None) -> str:
    if proc is None:
        return "git is not installed"
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ").removeprefix("error: ") if lines else f"git exited {proc.returncode}"


def resolve_base(root: Path, ref: str | None) -> Base:
    """An explicit ref must name a commit (else exit 2); the default is the merge base of HEAD and main."""
    if ref is not None:
        if not ref or ref.startswith("-"):
            raise UsageError(f"--base {ref!r} is not a git revision")
        proc = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        if proc is None or proc.returncode != 0:
            reason = _why(proc) if proc is None or proc.stderr.strip() else "no such commit"
            raise UsageError(f"--base {ref}: {reason} (in {root})")
        return Base(ref, proc.stdout.decode().strip())
    reasons = []
    for candidate in DEFAULT_BASES:
        proc = _git(root, "merge-base", "HEAD", candidate)
        if proc is not None and proc.returncode == 0:
            return Base(f"merge-base(HEAD, {candidate})", proc.stdout.decode().strip())
        reasons.append(_why(proc) if proc is None or proc.stderr.strip() else f"no merge base with {candidate}")
        if proc is None:
            break
    return Base(None, None, skipped=f"no merge base of HEAD with {' or '.join(DEFAULT_BASES)}: {reasons[0]}")


def base_files(root: Path, commit: str, folder: str) -> dict[str, str]:
    """File name → sha256 of the migration folder's files on the base commit (empty when it had no such folder)."""
    listing = _git(root, "ls-tree", "-z", commit, "--", f"{folder}/")
    if listing is None or listing.returncode != 0:
        raise UsageError(f"cannot list {folder} on {commit[:12]}: {_why(listing)}")
    blobs: dict[str, str] = {}  # blob id → file name
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        _mode, kind, blob = meta.decode().split()
        if kind == "blob":
            blobs[blob] = os.path.basename(path.decode("utf-8", "surrogateescape"))
    if not blobs:
        return {}
    # One `cat-file --batch` for all of them: "<id> blob <size>\n<bytes>\n" each.
    proc = _git(root, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs).encode())
    if proc is None or proc.returncode != 0:
        raise UsageError(f"cannot read {folder} on {commit[:12]}: {_why(proc)}")
    out, pos, result = proc.stdout, 0, {}
    for blob, name in blobs.items():
        end = out.index(b"\n", pos)
        _id, _kind, size = out[pos:end].decode().split()
        start = end + 1
        result[name] = hashlib.sha256(out[start:start + int(size)]).hexdigest()
        pos = start + int(size) + 1
    return result
