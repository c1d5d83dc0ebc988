"""Throwaway databases: where docs, validate-schema, smoke-test and measure-window build schemas, never the target.

The scratch server is `--scratch-url`, else MIGRATION_SCRATCH_URL (environment, then the --env file), else the
embedded local PostgreSQL (`scripts/dev/local-postgres.sh start`, its default state directory `.local/pg`). On it
the wrapper creates databases named `mw_scratch_<purpose>_<random>` from template0 and drops each one when the work
is done, also when it failed or was interrupted (Ctrl-C, SIGTERM). Only the server URL's own database is used to
issue CREATE/DROP DATABASE; nothing is ever written there.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migrate_wrapper.postgres import db
from migrate_wrapper.golang_migrate import output, runner
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.errors import MigrationFailed, PreCheckFailed, UsageError
from migrate_wrapper.model.migrations import MigrationSet

SETTING = "MIGRATION_SCRATCH_URL"
NAME_PREFIX = "mw_scratch_"
EMBEDDED_SCRIPT = Path("scripts") / "dev" / "local-postgres.sh"
EMBEDDED_START_TIMEOUT = 180  # initdb on a slow disk plus the script's own 60 s start wait
_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}
# What says where and as whom to connect; every other URL parameter (x-migrations-table, search_path, …) shapes
# what golang-migrate does inside the database, so a scratch copy of a target carries those over.
_CONNECTION_PARAMS = frozenset(
    {
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "connect_timeout", "sslmode", "sslcert",
        "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslinline", "sslsni", "target_session_attrs", "krbsrvname",
        "gssencmode", "binary_parameters", "disable_prepared_binary_result",
    }
)

log = logging.getLogger("migrate_wrapper")


@dataclass(frozen=True)
class ScratchServer:
    url: DatabaseUrl  # its database is only where CREATE/DROP DATABASE are issued
    origin: str  # for messages: --scratch-url, MIGRATION_SCRATCH_URL or the embedded PostgreSQL


def resolve(
    explicit: str | None,
    configured: str | None,
    *,
    project_root: Path,
    environment: str = "dev",
    targets: Sequence[DatabaseUrl] = (),
) -> ScratchServer:
    """The scratch server; refused when, in production, it is one of the targets themselves."""
    if explicit:
        server = ScratchServer(DatabaseUrl.parse(explicit, setting="--scratch-url"), "--scratch-url")
    elif configured:
        server = ScratchServer(DatabaseUrl.parse(configured, setting=SETTING), SETTING)
    else:
        server = embedded(project_root)
    if environment == "production":
        for target in targets:
            if same_database(server.url, target):
                raise UsageError(
                    f"refusing to use the production target {target.masked()} as the scratch server ({server.origin})",
                    hint=f"point {SETTING} or --scratch-url at a server where throwaway databases may be created",
                )
    return server


def same_database(a: DatabaseUrl, b: DatabaseUrl) -> bool:
    return _endpoint(a) == _endpoint(b) and a.database == b.database


def _endpoint(url: DatabaseUrl) -> tuple[str, int]:
    host = (url.host or url.param("host") or "").lower()
    return ("localhost" if host in _LOOPBACK else host), url.port or 5432


def embedded(project_root: Path) -> ScratchServer:
    """Start (or find running) the project's local PostgreSQL and connect as its superuser."""
    script = project_root / EMBEDDED_SCRIPT
    if not script.is_file():
        raise UsageError(
            f"no scratch server: {SETTING} is not set and {script} does not exist",
            hint=f"pass --scratch-url or set {SETTING} to a server where databases may be created and dropped",
        )
    configured_dir = os.environ.get("LOCAL_PG_DIR")
    state = Path(configured_dir).absolute() if configured_dir else project_root / ".local" / "pg"
    # The script's env file goes beside its state, so the operator's migrate.env is never created or rewritten.
    env = {**os.environ, "MIGRATE_ENV_FILE": str(state / "migrate.env")}
    try:
        started = subprocess.run(
            [str(script), "start"], env=env, capture_output=True, text=True, timeout=EMBEDDED_START_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"could not start the embedded PostgreSQL ({script}): {exc}") from None
    if started.returncode != 0:
        lines = [line for line in started.stderr.splitlines() if line.strip()]
        raise UsageError(
            f"could not start the embedded PostgreSQL: {lines[-1] if lines else f'exit {started.returncode}'}",
            hint=f"fix it (see {script} --help), or pass --scratch-url / set {SETTING}",
        )
    try:
        port = int((state / "port").read_text().strip())
        password = (state / "password").read_text().strip()
    except (OSError, ValueError):
        raise UsageError(f"the embedded PostgreSQL started but {state} has no port or password file") from None
    url = DatabaseUrl.parse(
        f"postgres://postgres:{password}@127.0.0.1:{port}/postgres?sslmode=disable", setting="embedded PostgreSQL"
    )
    return ScratchServer(url, f"the embedded PostgreSQL ({state})")


def carry_params(scratch_url: DatabaseUrl, target: DatabaseUrl) -> DatabaseUrl:
    """The scratch URL with the target's in-database parameters (migrations table, search_path, …)."""
    own = [(k, v) for k, v in scratch_url.params if k in _CONNECTION_PARAMS]
    theirs = [(k, v) for k, v in target.params if k not in _CONNECTION_PARAMS]
    return dataclasses.replace(scratch_url, params=tuple(own + theirs))


@contextmanager
def database(server: ScratchServer, purpose: str) -> Iterator[DatabaseUrl]:
    """A new, empty, uniquely named database on the scratch server; dropped on the way out, whatever happened."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in purpose.lower())[:30]
    name = f"{NAME_PREFIX}{safe}_{uuid.uuid4().hex[:12]}"
    with _sigterm_unwinds():
        _admin(server, "create database {} template template0", name)
        try:
            _admin(server, "comment on database {} is {}", name, _comment(purpose))
            params = tuple((k, v) for k, v in server.url.params if k != "dbname")
            yield dataclasses.replace(server.url, database=name, params=params)
        finally:
            _drop(server, name)


def _comment(purpose: str) -> str:
    return (f"migrate-wrapper scratch database ({purpose}) of pid {os.getpid()} on {socket.gethostname()}; "
            "dropped when that run ends, safe to drop if that process is gone")


def _admin(server: ScratchServer, statement: str, name: str, text: str | None = None) -> None:
    """One statement about database `name` (and a literal `text`), on a connection of its own."""
    import psycopg
    from psycopg import sql

    try:
        conn = db.connect(server.url)
    except PreCheckFailed as exc:
        raise PreCheckFailed("scratch", f"{exc.reason} ({server.origin})", hint=exc.hint) from None
    try:
        values = [sql.Identifier(name)] + ([sql.Literal(text)] if text is not None else [])
        conn.execute(sql.SQL(statement).format(*values))
    except psycopg.Error as exc:
        reason = server.url.mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise UsageError(
            f"scratch server {server.url.masked()} ({server.origin}): {reason}",
            hint="the scratch server's user needs CREATEDB",
        ) from None
    finally:
        conn.close()


def _drop(server: ScratchServer, name: str) -> None:
    try:
        _admin(server, "drop database if exists {} with (force)", name)
    except Exception as exc:  # noqa: BLE001 - never hide the run's own outcome behind a failed clean-up
        log.warning(
            "could not drop scratch database %s on %s: %s", name, server.url.masked(),
            server.url.mask_text(str(exc)), extra={"event": "scratch_drop_failed", "database": name},
        )


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM would end the process without running `finally`: turn it into KeyboardInterrupt meanwhile, so the
    scratch database is still dropped. Left alone when someone else already handles SIGTERM."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum, frame):  # noqa: ANN001 - signal handler signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# -- filling a scratch database with golang-migrate ------------------------------------------------------------------
SCRATCH_PARAMS = {"application_name": f"{db.APPLICATION_NAME}-scratch", "connect_timeout": "10"}


@dataclass
class ScratchRun:
    result: runner.RunResult
    wall_ms: float  # the whole golang-migrate process, start-up and connection included
    failed: str | None = None  # id of the step that was running when it failed or was stopped

    def failure_text(self) -> str:
        failure = self.result.failure
        line = f" (line {failure.sql_line})" if failure and failure.sql_line else ""
        message = failure.message if failure else "stopped"
        return f"{self.failed} failed: {message}{line}" if self.failed else f"golang-migrate failed: {message}{line}"


def run_migrate(
    binary: runner.Binary,
    files: MigrationSet,
    url: DatabaseUrl,
    command: list[str],
    *,
    deadline: float | None = None,
) -> ScratchRun:
    """One golang-migrate call on a scratch database; at `deadline` (time.monotonic()) it is killed outright: there
    is nothing in a scratch database worth finishing a step for."""
    started: list[output.StepStarted] = []

    def on_event(event: output.Event) -> None:
        if isinstance(event, output.StepStarted):
            started.append(event)

    argv = runner.build_argv(binary.path, source=files.folder, database_url=url.for_migrate(SCRATCH_PARAMS),
                             command=command)
    began = time.monotonic()
    result = runner.run(argv, mask=url.mask_text, on_event=on_event, deadline=deadline,
                        on_deadline=lambda proc: runner.stop(proc, grace=0), env=url.migrate_env())
    wall_ms = (time.monotonic() - began) * 1000.0
    failed = None
    if (result.failure is not None or result.interrupted) and started:
        last = started[-1]
        if not any(s.version == last.version and s.direction == last.direction for s in result.steps):
            migration = files.by_version(last.version)
            failed = migration.id if migration else f"{last.version}_{last.title}"
    return ScratchRun(result, wall_ms, failed)


def migrate_to(binary: runner.Binary, files: MigrationSet, url: DatabaseUrl, version: int | None, *,
               what: str) -> ScratchRun | None:
    """Bring a fresh scratch database to `version` (None: no migration applied) with golang-migrate itself."""
    if version is None:
        return None
    run = run_migrate(binary, files, url, ["goto", str(version)])
    if run.result.failure is not None:
        raise MigrationFailed(f"building {what} in a scratch database: {run.failure_text()}")
    return run
