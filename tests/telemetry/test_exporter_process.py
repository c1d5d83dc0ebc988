"""The exporter process a traced run forks (see migrate_wrapper/telemetry/pipe.py): it survives a terminal's Ctrl-C to export the
interrupted run, dies with a wrapper killed by -9, and never holds the wrapper's output open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import migration_files as files
from tests.faults.runs import wait_for_sleep
from tests.faults.test_interruptions import AFTER, CREATE_T, SLOW
from tests.telemetry.conftest import child_env, json_records, otel_env

pytestmark = pytest.mark.integration


def spawn_traced(dbs, root, endpoint):
    env = child_env(otel_env(endpoint), root=root)
    return subprocess.Popen(
        [sys.executable, "-m", "migrate_wrapper", "apply", "-c", "operational", "--env", str(dbs.env_file), "--yes",
         "--log-format", "json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def exporter_of(pid: int) -> int:
    """The forked exporter: the child that runs the wrapper's own interpreter (golang-migrate is the other one)."""
    own = Path(f"/proc/{pid}/exe").resolve()
    found = [c for c in children(pid) if Path(f"/proc/{c}/exe").resolve() == own]
    assert len(found) == 1, (found, children(pid))
    return found[0]


def alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False


def test_ctrl_c_to_the_process_group_still_exports_the_interrupted_run(migrate_bin, dbs, project, receiver):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn_traced(dbs, root, receiver.url)
    wait_for_sleep(dbs)
    exporter = exporter_of(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the exporter gets it too
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not alive(exporter)
    spans = receiver.spans()
    (root_span,) = [s for s in spans if s.name == "migration.apply"]
    assert root_span.status_code == 2  # the run's end, as the wrapper saw it after the exporter got the signal
    assert root_span.attributes["migration.outcome"] == "interrupted"
    steps = {s.attributes["migration.version"] for s in spans if s.name == "migration.step"}
    assert steps == {CREATE_T[0], SLOW[0]}
    assert not [r for r in json_records(err) if r["event"] == "telemetry_export_failed"]


def test_a_finished_step_is_exported_while_the_next_step_still_runs(migrate_bin, dbs, project, receiver):
    """Spans are written to the exporter in batches (pipe.ExporterProcess.FLUSH_SECONDS), never held back until the
    run ends: the first step's span reaches the collector while the slow second step sleeps."""
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn_traced(dbs, root, receiver.url)
    try:
        wait_for_sleep(dbs)
        deadline = time.monotonic() + 2.5  # inside SLOW's 3 s sleep
        steps: set[str] = set()
        while time.monotonic() < deadline and CREATE_T[0] not in steps:
            time.sleep(0.05)
            steps = {s.attributes["migration.version"] for s in receiver.spans() if s.name == "migration.step"}
        still_running = proc.poll() is None
    finally:
        _, err = proc.communicate(timeout=60)
    assert still_running and CREATE_T[0] in steps and SLOW[0] not in steps, (steps, err)
    assert proc.returncode == 0, err


def test_kill_9_takes_the_exporter_process_along(migrate_bin, dbs, project, receiver):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn_traced(dbs, root, receiver.url)
    wait_for_sleep(dbs)
    exporter = exporter_of(proc.pid)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(exporter):
        time.sleep(0.05)
    assert not alive(exporter), "the exporter process outlived the wrapper"
    time.sleep(3.5)  # let the server finish the step's sleep before the next test's database is dropped


def test_the_wrapper_output_closes_when_the_wrapper_exits(migrate_bin, dbs, receiver):
    """A pipe reader (`… | jq`, CI capturing output) sees the end of the output when the wrapper exits, not when its
    exporter does: the exporter holds none of the wrapper's files."""
    env = child_env({**otel_env(receiver.url), "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS": "30"})
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\n"
         "from migrate_wrapper import telemetry\n"
         "telemetry.start_early(None)\n"  # forked, waiting for a configuration that never comes
         "sys.stdout.write('done\\n'); sys.stdout.flush()\n"
         "os._exit(0)\n"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    started = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    assert out == "done\n"
    assert time.monotonic() - started < 5
