"""One child process, timed: wall time from fork to reap, peak memory, exit code.

Peak memory comes from two places:
* `ru_maxrss` of the reaped child (os.wait4): exact, but the kernel reports the largest of the child and every
  descendant it reaped itself — for the wrapper that is max(wrapper, its golang-migrate child), an upper bound;
* VmHWM sampled from /proc/<pid>/status every few milliseconds while the child runs: the child process alone
  (Python exec's no intermediate process for a console script), a lower bound that can miss growth in the very
  last samples' interval.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class Measured:
    argv: tuple[str, ...]
    seconds: float
    returncode: int
    maxrss_bytes: int  # ru_maxrss of the child and its reaped descendants (kernel, exact)
    hwm_bytes: int | None  # VmHWM of the child process alone (sampled), when sampling was asked for
    output: str  # combined stdout+stderr, only when kept (else "")
    cpu_seconds: float = 0.0  # user + system CPU of the child and its reaped descendants


class ChildFailed(RuntimeError):
    pass


def _read_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 600,
    keep_output: bool = False,
    output_file: Path | None = None,
    sample_hwm: bool = False,
    check: bool = True,
) -> Measured:
    """Run argv with stdin closed; its output goes to output_file, to memory (keep_output), or to /dev/null."""
    if keep_output:
        out = subprocess.PIPE
    elif output_file is not None:
        out = open(output_file, "wb")  # noqa: SIM115 - closed below
    else:
        out = subprocess.DEVNULL
    hwm: list[int] = []
    stop = threading.Event()
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        sampler = None
        if sample_hwm:
            def sample() -> None:
                while not stop.wait(SAMPLE_SECONDS):
                    value = _read_hwm(proc.pid)
                    if value is None:
                        return
                    hwm.append(value)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.daemon = True
        killer.start()
        chunks: list[bytes] = []
        reader = None
        if keep_output:
            reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
            reader.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            stop.set()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if reader is not None:
            reader.join()
            proc.stdout.close()
        if sampler is not None:
            sampler.join()
    finally:
        if output_file is not None and not keep_output:
            out.close()
    text = b"".join(chunks).decode("utf-8", "replace")
    result = Measured(tuple(argv), seconds, proc.returncode, usage.ru_maxrss * 1024, max(hwm) if hwm else None,
                      text, usage.ru_utime + usage.ru_stime)
    if check and result.returncode != 0:
        detail = text or (output_file.read_text(errors="replace") if output_file and output_file.exists() else "")
        raise ChildFailed(f"{' '.join(argv[:4])} … exited {result.returncode} after {seconds:.1f}s:\n"
                          f"{detail[-3000:]}")
    return result
