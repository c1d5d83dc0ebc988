"""Shared fixtures: the real golang-migrate binary and a PostgreSQL the test session starts itself.

Tests that need them never skip in CI (CI=true): a missing binary or server there is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CANARY_PASSWORD = "Canary-Pw:7q@x/%#"  # URL specials on purpose; must never appear anywhere, raw or encoded
CANARY_FORMS = (CANARY_PASSWORD, quote(CANARY_PASSWORD, safe=""), "Canary-Pw")


def unavailable(reason: str) -> None:
    """Skip for lack of a tool or server, except in CI, where that is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI never skips these tests: run `make setup`)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def migrate_bin() -> Path:
    path = Path(os.environ.get("MIGRATE_BIN") or ROOT / ".tools" / "bin" / "migrate")
    if not path.is_file():
        unavailable(f"golang-migrate not built at {path}")
    return path


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    password: str

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        pw = quote(self.password if password is None else password, safe="")
        return f"postgres://{user}:{pw}@{self.host}:{self.port}/{database}?sslmode=disable"

    def _libpq(self, database: str) -> tuple[str, dict[str, str]]:
        """A URL without the password for psql and pg_dump, and the environment that carries it: no password on
        a command line, in the tests either."""
        return (f"postgres://postgres@{self.host}:{self.port}/{database}?sslmode=disable",
                {**os.environ, "PGPASSWORD": self.password})

    def psql(self, database: str, sql: str) -> str:
        url, env = self._libpq(database)
        out = subprocess.run(
            ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            capture_output=True, text=True, check=True, timeout=60, env=env,
        )
        return out.stdout.strip()

    def admin(self, sql: str) -> None:
        """One statement on the postgres database, in this process (no psql to start): create and drop databases."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres", password=self.password,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def dump(self, database: str, *options: str) -> str:
        """pg_dump --no-owner with `options`, comparable between two runs."""
        url, env = self._libpq(database)
        out = subprocess.run(
            ["pg_dump", "--no-owner", *options, "-d", url],
            capture_output=True, text=True, check=True, timeout=60, env=env,
        ).stdout
        # pg_dump >= 15.14 brackets dumps with a random \restrict key.
        return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))

    def dump_schema(self, database: str) -> str:
        return self.dump(database, "--schema-only")


@pytest.fixture(scope="session")
def pg(tmp_path_factory) -> Server:
    script = ROOT / "scripts" / "dev" / "local-postgres.sh"
    if not shutil.which("psql") or not Path("/usr/lib/postgresql/15/bin/initdb").exists() and not os.environ.get("PG_BIN"):
        unavailable("PostgreSQL 15 server binaries not found")
    state = tmp_path_factory.mktemp("pg")
    env = {**os.environ, "LOCAL_PG_DIR": str(state), "MIGRATE_ENV_FILE": str(state / "migrate.env")}
    started = subprocess.run([str(script), "start"], env=env, capture_output=True, text=True, timeout=180,
                             stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        pytest.fail(f"local PostgreSQL did not start: {started.stderr}")
    server = Server("127.0.0.1", int((state / "port").read_text().strip()), (state / "password").read_text().strip())
    # A role with a canary password: every test that uses it proves the password leaks nowhere.
    server.psql("postgres", f"create role canary login superuser password '{CANARY_PASSWORD}'")
    yield server
    subprocess.run([str(script), "destroy"], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


@dataclass
class Databases:
    server: Server
    operational: str
    analytics: str
    env_file: Path

    def url(self, component: str) -> str:
        return self.server.url(getattr(self, component), user="canary", password=CANARY_PASSWORD)


@pytest.fixture
def dbs(pg: Server, tmp_path: Path) -> Databases:
    """Two fresh databases and an env file pointing at them through the canary role."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"op_{suffix}", f"an_{suffix}")
    for name in names:
        pg.admin(f"create database {name}")
    env_file = tmp_path / "migrate.env"
    result = Databases(pg, *names, env_file)
    env_file.write_text(
        f"DB_URL={result.url('operational')}\nANALYTICS_URL={result.url('analytics')}\nMIGRATION_ENVIRONMENT=dev\n"
    )
    yield result
    for name in names:
        pg.admin(f"drop database if exists {name} with (force)")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def error_lines(output: Result | str) -> list[str]:
    """The `error: …` lines of a run's stderr (a Result, or the text of a process the test spawned). In
    --log-format json (the default without a terminal) the final error is a command_error record: it is given back
    as the line text mode prints, after checking it is the record the README documents."""
    import json

    text = output.stderr if isinstance(output, Result) else output
    found = []
    for line in text.splitlines():
        if line.startswith("error: "):
            found.append(line)
        elif line.startswith("{") and '"command_error"' in line:
            record = json.loads(line)
            assert record["level"] == "ERROR" and isinstance(record["exit_code"], int) and record["outcome"], record
            found.append(f"error: {record['msg']}")
    return found


def error_line(output: Result | str) -> str:
    """The last of error_lines."""
    return error_lines(output)[-1]


def version(dbs: Databases, component: str = "operational") -> str:
    """golang-migrate's version row of a component's database: `5`, `5 dirty`, or empty (no row)."""
    return dbs.server.psql(getattr(dbs, component),
                           "select version::text || case when dirty then ' dirty' else '' end from schema_migrations")


def child_env(extra: dict[str, str] | None = None, *, root: Path = ROOT) -> dict[str, str]:
    """The environment every CLI child gets: none of the caller's DB, MIGRATION_ or OTEL_ settings (the env files
    and `extra` say what a test needs), this project's golang-migrate unless the caller's MIGRATE_BIN says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_URL", "ANALYTICS_URL", "MIGRATION_", "OTEL_"))}
    env["MIGRATE_WRAPPER_ROOT"] = str(root)
    env.setdefault("MIGRATE_BIN", str(ROOT / ".tools" / "bin" / "migrate"))
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, root: Path = ROOT,
            timeout: float = 120) -> Result:
    """The real CLI in a subprocess, with no terminal; asserts the house rules every run must keep."""
    proc = subprocess.run(
        [sys.executable, "-m", "migrate_wrapper", *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env=child_env(env, root=root), cwd=cwd,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in result.output, result.output
    assert not any(form in result.output for form in CANARY_FORMS), result.output
    return result


def invoke(*args: str, env: dict[str, str] | None = None, root: Path = ROOT) -> Result:
    """The CLI in this process (Typer's CliRunner), with run_cli's environment and house rules: for the tests whose
    subject is not a process boundary (usage, configuration, refusals, lint; golang-migrate still runs as the child
    it always is). What a run leaves in the process is put back as a fresh process would have it: the environment,
    the log handlers, the project-file cache, telemetry's process state and the secrets to mask."""
    import logging
    from unittest import mock

    from typer.testing import CliRunner

    from migrate_wrapper import telemetry
    from migrate_wrapper.cli.main import app
    from migrate_wrapper.config import components, dburl
    from migrate_wrapper.events import LOGGER_NAME

    components._load.cache_clear()
    known = set(dburl.KNOWN_SECRETS)
    try:
        with mock.patch.dict(os.environ, child_env(env, root=root), clear=True):
            outcome = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        logger = logging.getLogger(LOGGER_NAME)
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()
        logger.propagate = True
        telemetry.shutdown()
        if telemetry._exporter is not None:  # forked early, never configured
            telemetry._exporter.stop()
        telemetry._recorder = telemetry._exporter = None
        dburl.KNOWN_SECRETS.clear()
        dburl.KNOWN_SECRETS.update(known)
    result = Result(outcome.exit_code, outcome.stdout, outcome.stderr)
    assert "Traceback" not in result.output, result.output
    assert "internal error:" not in result.output, result.output  # the edge's word for an unexpected exception
    assert not any(form in result.output for form in CANARY_FORMS), result.output
    return result


def migration_files(*specs: tuple[str, str, str]) -> dict[str, str]:
    """(id, up SQL, down SQL) triples as the {file name: body} a `project` folder takes."""
    out = {}
    for migration_id, up, down in specs:
        out[f"{migration_id}.up.sql"], out[f"{migration_id}.down.sql"] = up, down
    return out


@pytest.fixture
def project(tmp_path: Path):
    """A project root with its own migrations folders, for tests that need migrations of their own."""

    def make(files: dict[str, dict[str, str]]) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        shutil.copy(ROOT / "migrate-wrapper.toml", root / "migrate-wrapper.toml")  # the shipped two components
        for component in ("operational", "analytics"):
            folder = root / "db" / "migrations" / component
            folder.mkdir(parents=True, exist_ok=True)
            for name, body in files.get(component, {}).items():
                (folder / name).write_text(body)
        return root

    return make


# -- the fault suite: `pytest -m faults` runs it; the table of scenario, expected and observed is printed at the end.
FAULT_ROWS: list[tuple[str, str, str]] = []


class FaultRecord:
    def __init__(self, scenario: str, expected: str) -> None:
        self.scenario, self.expected, self.seen = scenario, expected, ""

    def observed(self, text: str) -> None:
        self.seen = " ".join(text.split())[:110]


@pytest.fixture(autouse=True)
def fault(request):
    """Tests marked `faults` name their scenario and expectation; they may say what they observed, else the
    table shows whether the test passed."""
    marker = request.node.get_closest_marker("faults")
    if marker is None:
        yield None
        return
    scenario = marker.kwargs.get("scenario", request.node.name)
    if hasattr(request.node, "callspec"):
        scenario = f"{scenario} [{request.node.callspec.id}]"
    record = FaultRecord(scenario, marker.kwargs.get("expected", ""))
    yield record
    report = getattr(request.node, "rep_call", None)
    outcome = "PASSED" if report is not None and report.passed else "FAILED"
    request.node.fault_row = (record.scenario, record.expected, f"{outcome}: {record.seen}" if record.seen else outcome)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    elif report.when == "teardown" and hasattr(item, "fault_row"):
        report.user_properties.append(("fault_row", item.fault_row))  # reaches the xdist controller with the report
    return report


def pytest_runtest_logreport(report):
    FAULT_ROWS.extend(value for name, value in report.user_properties if name == "fault_row")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FAULT_ROWS:
        return
    width = max(len(r[0]) for r in FAULT_ROWS)
    exp_width = max(len(r[1]) for r in FAULT_ROWS)
    terminalreporter.section(f"fault suite: {len(FAULT_ROWS)} scenarios")
    terminalreporter.write_line(f"{'scenario':<{width}}  {'expected':<{exp_width}}  observed")
    for scenario, expected, seen in FAULT_ROWS:
        terminalreporter.write_line(f"{scenario:<{width}}  {expected:<{exp_width}}  {seen}")
