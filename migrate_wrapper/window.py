"""The time window: at the deadline ask golang-migrate to stop after the running step, then cancel the running
statement on the server, then end the process — each after a short grace, on a thread so output keeps flowing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable


class Stopper:
    def __init__(self, grace: float, cancel_statement: Callable[[], int | None]) -> None:
        self.grace = grace
        self.cancel_statement = cancel_statement  # returns the pid it cancelled, if any
        self.fired = False
        self.cancelled_pid: int | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, proc: subprocess.Popen[bytes]) -> None:
        self.fired = True
        self._thread = threading.Thread(target=self._escalate, args=(proc,), daemon=True)
        self._thread.start()

    def _escalate(self, proc: subprocess.Popen[bytes]) -> None:
        _signal(proc, signal.SIGINT)  # golang-migrate: "Stopping after this running migration"
        if _wait(proc, self.grace):
            return
        try:
            self.cancelled_pid = self.cancel_statement()
        except Exception:  # noqa: BLE001 - best effort; the kill below still ends it
            self.cancelled_pid = None
        if _wait(proc, self.grace):
            return
        _signal(proc, signal.SIGKILL)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=self.grace * 2 + 5)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False
