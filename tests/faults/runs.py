"""Running the real CLI as a background process for the fault suite: start it, wait for golang-migrate's step,
finish it, read the database's state."""

import subprocess
import sys
import time

import psycopg

from tests.conftest import CANARY_FORMS, child_env


def spawn(dbs, root, *args, env=None, command="apply"):
    return subprocess.Popen(
        [sys.executable, "-m", "migrate_wrapper", command, "--env", str(dbs.env_file), "--yes", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(env, root=root),
    )


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in out + err and not any(f in out + err for f in CANARY_FORMS)
    return proc.returncode, out, err


def migrate_children(proc):
    """The golang-migrate process(es) the wrapper runs right now."""
    pids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == "migrate":
                    out.append(int(pid))
        except OSError:
            continue
    return out


def wait_for_sleep(dbs, timeout=30, pattern="%pg_sleep%"):
    deadline = time.monotonic() + timeout
    with psycopg.connect(dbs.server.url(dbs.operational), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("select pid from pg_stat_activity where application_name = 'db-migrate-cli' "
                               "and query like %s and state = 'active'", (pattern,)).fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
    raise AssertionError("golang-migrate never reached the slow step")

