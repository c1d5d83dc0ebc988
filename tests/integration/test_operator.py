"""What an operator at a terminal is told: the versions in use, the environment, and a golang-migrate other than
the pinned one."""

from __future__ import annotations

import json
import stat

import pytest

from migrate_wrapper import __version__
from migrate_wrapper.versions import GOLANG_MIGRATE_VERSION
from tests.conftest import ROOT, invoke

pytestmark = pytest.mark.integration


def test_version_names_the_wrapper_and_the_golang_migrate_a_run_would_use(migrate_bin):
    result = invoke("--version")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"migrate-wrapper {__version__}",
        f"golang-migrate {GOLANG_MIGRATE_VERSION} at {migrate_bin} (pinned {GOLANG_MIGRATE_VERSION})",
    ]
    missing = invoke("--version", env={"MIGRATE_BIN": str(ROOT / "no-such-migrate")})
    assert missing.returncode == 0 and "golang-migrate not usable: MIGRATE_BIN=" in missing.stdout


def test_another_golang_migrate_is_a_warning_naming_both_versions(migrate_bin, dbs, tmp_path):
    other = tmp_path / "migrate"
    other.write_text(f'#!/bin/sh\nif [ "$1" = "-version" ]; then echo 4.18.2 >&2; exit 0; fi\nexec {migrate_bin} "$@"\n')
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--dry-run", "--log-format", "json",
                    env={"MIGRATE_BIN": str(other)})
    assert result.returncode == 0, result.output
    (pre,) = [json.loads(line) for line in result.stderr.splitlines() if '"migration_pre_checks"' in line]
    (check,) = [c for c in pre["checks"] if c["name"] == "golang_migrate"]
    assert check["status"] == "warn"
    assert check["reason"] == f"golang-migrate 4.18.2 at {other}, not the pinned {GOLANG_MIGRATE_VERSION}"

    text = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--dry-run", "--log-format", "text")
    assert "operational @ postgres://canary:***@" in text.stdout and "(dev): apply" in text.stdout
    assert f"golang-migrate {GOLANG_MIGRATE_VERSION} at {migrate_bin}" in text.stdout


def test_a_non_editable_install_runs_from_any_directory(migrate_bin, dbs, tmp_path):
    """The built wheel (not this checkout) holds every package the CLI needs: from another directory, with the
    project named by --project-dir, status reads the database."""
    import subprocess
    import sys

    from tests.conftest import child_env

    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("migrate_wrapper-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**child_env(), "PYTHONPATH": str(site)}
    env.pop("MIGRATE_WRAPPER_ROOT")
    where = subprocess.run([sys.executable, "-c", "import migrate_wrapper; print(migrate_wrapper.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site))  # the installed copy, not the checkout
    status = subprocess.run([sys.executable, "-m", "migrate_wrapper", "--project-dir", str(ROOT), "status", "-c",
                             "operational", "--env", str(dbs.env_file), "--format", "json"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["components"][0]["state"] == "pending"


def test_version_looks_for_golang_migrate_in_the_project_named_by_project_dir(migrate_bin, tmp_path):
    env = {"MIGRATE_BIN": "", "PATH": "/usr/bin:/bin", "MIGRATE_WRAPPER_ROOT": str(tmp_path)}  # nothing found there
    assert "golang-migrate not usable" in invoke("--version", env=env).stdout
    named = invoke("--project-dir", str(ROOT), "--version", env=env)
    assert named.stdout.splitlines()[-1] == (
        f"golang-migrate {GOLANG_MIGRATE_VERSION} at {ROOT / '.tools' / 'bin' / 'migrate'} (pinned {GOLANG_MIGRATE_VERSION})")


def test_a_result_document_keeps_stdout_to_itself_and_the_report_goes_to_stderr(migrate_bin, dbs):
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--dry-run", "--format", "json",
                    "--log-format", "text")
    assert result.returncode == 0, result.output
    (run,) = json.loads(result.stdout)["components"]  # stdout is the document alone
    assert run["outcome"] == "dry_run"
    assert "operational @ postgres://canary:***@" in result.stderr and "(dev): apply" in result.stderr
