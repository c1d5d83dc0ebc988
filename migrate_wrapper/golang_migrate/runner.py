"""The golang-migrate runner: find and vet the binary, build argv, run it, and read its output as it arrives (what
the output says is output.py's)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migrate_wrapper.errors import BinaryError
from migrate_wrapper.config.dburl import LIBPQ_HAZARDS
from migrate_wrapper.golang_migrate import vetted
from migrate_wrapper.golang_migrate.output import (
    ErrorLine, Event, MigrateFailure, NoChange, Stopping, StepFinished, parse_error, parse_line,
)
from migrate_wrapper.versions import GOLANG_MIGRATE_VERSION

# -- the binary -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binary:
    path: Path
    version: str  # as reported by -version


def locate(configured: str | None, project_root: Path) -> Path:
    """MIGRATE_BIN, else `migrate` on PATH, else the project's .tools/bin/migrate."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BinaryError(f"MIGRATE_BIN={configured} is not an executable file", hint="run `make setup`")
        return path
    on_path = shutil.which("migrate")
    if on_path:
        return Path(on_path)
    local = project_root / ".tools" / "bin" / "migrate"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    raise BinaryError(
        "golang-migrate not found (no MIGRATE_BIN, no `migrate` on PATH, no .tools/bin/migrate)",
        hint="run `make setup` to build the pinned version",
    )


def vet(path: Path, *, timeout: float = 10.0, cache: Path | None = None) -> Binary:
    """Check that `path` is golang-migrate v4 with the postgres driver compiled in. With `cache`, a file already
    vetted (the same path, inode, size and modification time) is not run again: two subprocesses on every run."""
    key = vetted.key(path)
    if cache is not None and key is not None:
        known = vetted.read(cache).get(key)
        if known is not None:
            return Binary(path=path, version=known)
    binary = _vet(path, timeout=timeout)
    if cache is not None and key is not None:
        vetted.write(cache, key, binary.version)
    return binary


def _vet(path: Path, *, timeout: float) -> Binary:
    pinned = f"make setup builds v{GOLANG_MIGRATE_VERSION}"
    try:
        version_run = subprocess.run(
            [str(path), "-version"], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env=child_env(),
        )
        help_run = subprocess.run(
            [str(path), "-help"], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BinaryError(f"cannot run {path}: {exc}", hint=pinned) from None
    version = (version_run.stderr + version_run.stdout).strip()
    drivers = re.search(r"^Database drivers: (.*)$", help_run.stderr + help_run.stdout, re.M)
    if version_run.returncode != 0 or drivers is None:
        raise BinaryError(f"{path} is not golang-migrate", hint=pinned)
    if "postgres" not in [d.strip() for d in drivers.group(1).split(",")]:
        raise BinaryError(
            f"{path} was built without the postgres driver",
            hint=f"{pinned} with -tags 'postgres'",
        )
    if version != "dev" and not re.match(r"^v?4\.\d+", version):
        raise BinaryError(f"{path} is golang-migrate {version}; v4 is required", hint=pinned)
    return Binary(path=path, version=version.removeprefix("v"))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """golang-migrate's environment: the wrapper's, less what makes lib/pq panic, plus `extra` (the password)."""
    return {**{k: v for k, v in os.environ.items() if k not in LIBPQ_HAZARDS}, **(extra or {})}


def build_argv(binary: Path, *, source: Path, database_url: str, command: Sequence[str]) -> list[str]:
    """Global flags first, then the command: golang-migrate ignores flags placed after it."""
    return [str(binary), "-verbose", "-path", str(source), "-database", database_url, *command]


# -- running it -----------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    returncode: int
    steps: list[StepFinished] = field(default_factory=list)
    no_change: bool = False
    failure: MigrateFailure | None = None
    interrupted: bool = False  # stopped by a deadline or a signal


def run(
    argv: list[str],
    *,
    mask: Callable[[str], str],
    on_event: Callable[[Event], None] = lambda event: None,
    on_output: Callable[[str], None] = lambda line: None,
    deadline: float | None = None,
    on_deadline: Callable[[subprocess.Popen[bytes]], None] | None = None,
    on_start: Callable[[subprocess.Popen[bytes] | None], None] = lambda proc: None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run golang-migrate, parsing each line as it arrives; every line is masked before anyone sees it.

    At `deadline` (a time.monotonic() value) `on_deadline(process)` is called once to stop it; the run then goes on
    reading until the process exits, so steps that finish in the meantime are still reported. `env` is added to
    golang-migrate's environment (DatabaseUrl.migrate_env: the password, which never goes on its command line).
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=child_env(env),
        start_new_session=True,  # the wrapper decides when golang-migrate sees a signal
        preexec_fn=_die_with_parent,
    )
    on_start(proc)
    result = RunResult(returncode=-1)
    error_lines: list[str] = []

    def on_line(raw: bytes) -> None:
        line = mask(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        on_output(line)
        if error_lines:
            error_lines.append(line)
            return
        event = parse_line(line)
        if isinstance(event, ErrorLine):
            error_lines.append(event.text)
            return
        if isinstance(event, StepFinished):
            result.steps.append(event)
        elif isinstance(event, NoChange):
            result.no_change = True
        elif isinstance(event, Stopping):
            result.interrupted = True
        if event is not None:
            on_event(event)

    def on_timeout() -> None:
        result.interrupted = True
        if on_deadline:
            on_deadline(proc)

    try:
        _read_lines(proc, on_line, deadline=deadline, on_timeout=on_timeout)
        result.returncode = proc.wait()
    except BaseException:
        # Never leave golang-migrate running behind us (KeyboardInterrupt included), and keep emptying its pipe
        # meanwhile: blocked on a write, it could not finish the running step and would be killed at the grace.
        threading.Thread(target=_drain, args=(proc,), daemon=True).start()
        stop(proc)
        raise
    finally:
        on_start(None)
    if error_lines:
        result.failure = parse_error("\n".join(error_lines))
    elif result.returncode != 0:
        result.failure = MigrateFailure("other", f"golang-migrate exited with code {result.returncode}")
    return result


def _die_with_parent() -> None:
    """In the child: the kernel kills golang-migrate if the wrapper dies (even by SIGKILL), so it never runs on
    unsupervised. Linux only; elsewhere the own process group still keeps terminal signals away from it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_lines(proc: subprocess.Popen[bytes], on_line: Callable[[bytes], None], *, deadline: float | None,
                on_timeout: Callable[[], None]) -> None:
    """Each line of the process's output as it arrives, until it closes its end; `on_timeout` once at `deadline`.

    Read here, on the run's own thread, in whatever chunks the pipe holds: a reader thread handing over line by line
    cost about as much CPU per step as the step's own log records. So golang-migrate waits when the wrapper does:
    while a listener's write blocks (a paused terminal, a stalled pipe reader), golang-migrate pauses at its next
    line once the pipe is full, instead of running ahead of what the wrapper has recorded."""
    import selectors

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending: list[bytes] = []  # the line being read: a failing file is printed whole, maybe as one huge line
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not selector.select(timeout):
                deadline = None
                on_timeout()
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            lines = chunk.split(b"\n")
            if pending:
                lines[0] = b"".join([*pending, lines[0]])
            rest = lines.pop()  # after the chunk's last newline: the start of the next line, maybe empty
            pending = [rest] if rest else []
            for line in lines:
                on_line(line)
    if pending:
        on_line(b"".join(pending))


def _drain(proc: subprocess.Popen[bytes]) -> None:
    """Read and drop what golang-migrate still prints while it is being stopped after the run gave up on it."""
    assert proc.stdout is not None
    try:
        while os.read(proc.stdout.fileno(), 65536):
            pass
    except (OSError, ValueError):
        pass


def stop(proc: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Ask politely (SIGINT: finish the running step), then end it."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
