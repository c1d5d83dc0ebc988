"""Argument building and binary vetting (golang-migrate faked by pytest-subprocess), and live output handling (a
shell script in golang-migrate's place)."""

from pathlib import Path

import pytest

from migrate_wrapper.golang_migrate import runner
from migrate_wrapper.errors import BinaryError
from migrate_wrapper.golang_migrate.output import StepFinished, StepStarted

BIN = Path("/opt/migrate")
HELP_TAIL = "Source drivers: file\nDatabase drivers: stub, postgres, postgresql\n"


def test_global_flags_come_before_the_command():
    argv = runner.build_argv(BIN, source=Path("/m"), database_url="postgres://u:p@h/d", command=["down", "2"])
    assert argv == ["/opt/migrate", "-verbose", "-path", "/m", "-database", "postgres://u:p@h/d", "down", "2"]


def test_vet_accepts_golang_migrate_with_postgres(fp):
    fp.register([str(BIN), "-version"], stderr="4.19.1\n")
    fp.register([str(BIN), "-help"], stderr="Usage: migrate OPTIONS COMMAND [arg...]\n" + HELP_TAIL)
    assert runner.vet(BIN) == runner.Binary(BIN, "4.19.1")


@pytest.mark.parametrize(
    ("version", "help_text", "message"),
    [
        ("4.19.1\n", "Source drivers: file\nDatabase drivers: stub\n", "built without the postgres driver"),
        ("hello\n", "usage: something else\n", "is not golang-migrate"),
        ("3.5.4\n", HELP_TAIL, "golang-migrate 3.5.4; v4 is required"),
    ],
)
def test_vet_rejects(fp, version, help_text, message):
    fp.register([str(BIN), "-version"], stderr=version)
    fp.register([str(BIN), "-help"], stderr=help_text)
    with pytest.raises(BinaryError, match=message):
        runner.vet(BIN)


def test_locate_prefers_migrate_bin(tmp_path, monkeypatch):
    exe = tmp_path / "m"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert runner.locate(str(exe), tmp_path) == exe
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / ".tools" / "bin").mkdir(parents=True)
    local = tmp_path / ".tools" / "bin" / "migrate"
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    assert runner.locate(None, tmp_path) == local
    local.unlink()
    with pytest.raises(BinaryError, match="golang-migrate not found"):
        runner.locate(None, tmp_path)


def _fake_migrate(tmp_path: Path, lines: list[str], returncode: int = 0) -> Path:
    """A real process in golang-migrate's place, printing `lines` to stderr as it does (runner.run reads the pipe
    itself, which pytest-subprocess's in-memory streams cannot stand in for)."""
    out = tmp_path / "output.txt"
    out.write_text("".join(line + "\n" for line in lines))
    fake = tmp_path / "migrate"
    fake.write_text(f"#!/bin/sh\ncat '{out}' >&2\nexit {returncode}\n")
    fake.chmod(0o755)
    return fake


def test_run_streams_events_masks_output_and_maps_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PGSERVICE", "crashes-lib-pq")
    fake = _fake_migrate(tmp_path, [
        "2026/11/24 22:05:38 Start buffering 1/u a",
        "2026/11/24 22:05:38 Read and execute 1/u a",
        "2026/11/24 22:05:38 Finished 1/u a (read 1ms, ran 2.5ms)",
        "2026/11/24 22:05:38 Read and execute 2/u b",
        "2026/11/24 22:05:38 error: migration failed: boom in line 2: select 's3cret-pw';",
        "select 1; (details: pq: boom)",
    ], returncode=1)
    argv = runner.build_argv(fake, source=Path("/m"), database_url="postgres://u:s3cret-pw@h/d", command=["up"])
    events, output = [], []
    result = runner.run(argv, mask=lambda s: s.replace("s3cret-pw", "***"), on_event=events.append,
                        on_output=output.append)
    assert events == [StepStarted(1, "up", "a"), StepFinished(1, "up", "a", 2.5), StepStarted(2, "up", "b")]
    assert result.returncode == 1 and result.steps == [StepFinished(1, "up", "a", 2.5)]
    assert result.failure is not None and result.failure.message == "boom" and result.failure.sql_line == 2
    assert len(output) == 6 and not any("s3cret-pw" in line for line in output)
    assert "PGSERVICE" not in runner.child_env()


def test_run_no_change(tmp_path):
    fake = _fake_migrate(tmp_path, ["2026/11/24 22:05:42 no change", "2026/11/24 22:05:42 Finished after 1ms"])
    result = runner.run([str(fake), "up"], mask=str)
    assert result.no_change and result.failure is None and result.returncode == 0


def test_a_last_line_without_newline_is_still_read(tmp_path):
    fake = tmp_path / "migrate"
    fake.write_text("#!/bin/sh\nprintf 'Read and execute 1/u a\\nFinished 1/u a (read 1ms, ran 2ms)' >&2\n")
    fake.chmod(0o755)
    events = []
    runner.run([str(fake), "up"], mask=str, on_event=events.append)
    assert events == [StepStarted(1, "up", "a"), StepFinished(1, "up", "a", 2.0)]


def test_the_deadline_is_called_once_and_the_output_after_it_still_read(tmp_path):
    fake = tmp_path / "migrate"
    fake.write_text("#!/bin/sh\necho 'Read and execute 1/u a' >&2\nsleep 0.3\n"
                    "echo 'Finished 1/u a (read 1ms, ran 300ms)' >&2\n")
    fake.chmod(0o755)
    import time

    calls, events = [], []
    result = runner.run([str(fake), "up"], mask=str, on_event=events.append, deadline=time.monotonic() + 0.05,
                        on_deadline=calls.append)
    assert len(calls) == 1 and result.interrupted
    assert events[-1] == StepFinished(1, "up", "a", 300.0)


def test_nonzero_exit_without_error_line_is_still_a_failure(tmp_path):
    fake = _fake_migrate(tmp_path, ["panic: something"], returncode=2)
    result = runner.run([str(fake), "up"], mask=str)
    assert result.failure is not None and "exited with code 2" in result.failure.message


def test_a_vetted_binary_is_not_run_again_until_it_changes(tmp_path):
    """The vet cache is keyed on the file (path, inode, size, mtime): a replaced binary is vetted again."""
    import os
    import stat

    from migrate_wrapper.golang_migrate import runner

    calls = tmp_path / "calls"
    fake = tmp_path / "migrate"

    def write(version: str) -> None:
        fake.write_text(f'#!/bin/sh\necho x >> {calls}\nif [ "$1" = "-version" ]; then echo {version} >&2; exit 0; fi\n'
                        'echo "Database drivers: postgres, stub" >&2\n')
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    write("4.19.1")
    cache = tmp_path / "cache" / "vetted.json"
    assert runner.vet(fake, cache=cache).version == "4.19.1"
    assert runner.vet(fake, cache=cache).version == "4.19.1"
    assert len(calls.read_text().splitlines()) == 2  # -version and -help, once
    write("4.18.2")  # replaced in place: another size
    os.utime(fake, ns=(1, 1))
    assert runner.vet(fake, cache=cache).version == "4.18.2"
    assert len(calls.read_text().splitlines()) == 4


def test_a_line_longer_than_the_pipe_arrives_whole(tmp_path):
    """golang-migrate prints a failing file whole: a one-line data load of megabytes is one error line, split over
    many reads of the pipe (and assembled without copying it again on every read)."""
    body = "insert into t values " + ",".join(f"({i})" for i in range(400_000))  # ~3.6 MB, no newline inside
    fake = _fake_migrate(tmp_path, ["Read and execute 1/u big", f"error: migration failed: boom in line 1: {body}"],
                         returncode=1)
    output = []
    result = runner.run([str(fake), "up"], mask=str, on_output=output.append)
    assert len(output) == 2 and output[1].endswith(body) and len(output[1]) > 3_000_000
    assert result.failure is not None and result.failure.message == "boom"


def test_golang_migrate_is_still_read_while_it_is_stopped_after_a_failing_hook(tmp_path):
    """A listener that raises ends the run; golang-migrate is asked to stop (SIGINT) and may print much more as it
    finishes its step. Its pipe is still emptied meanwhile, so it ends by itself rather than being killed."""
    fake = tmp_path / "migrate"
    fake.write_text("#!/bin/sh\n"
                    "trap 'head -c 300000 /dev/zero | tr \"\\\\0\" x >&2; echo >&2; exit 0' INT\n"
                    "echo 'Read and execute 1/u a' >&2\n"
                    "while :; do sleep 0.05; done\n")
    fake.chmod(0o755)
    started = []

    def fail(event):
        started.append(event)
        raise RuntimeError("a listener failed")

    procs = []
    with pytest.raises(RuntimeError, match="a listener failed"):
        runner.run([str(fake), "up"], mask=str, on_event=fail, on_start=lambda p: procs.append(p) if p else None)
    assert started and procs[0].returncode == 0  # exited by itself after its SIGINT output, not killed (-9)
