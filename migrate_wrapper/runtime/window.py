"""Stopping golang-migrate on purpose: at the window's deadline, or when the operator presses Ctrl-C (or the wrapper
gets SIGTERM). golang-migrate's own SIGINT handling finishes the running step and stops; after that come a cancel of
the running statement on the server and, last, killing the process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stopper:
    def __init__(self, grace: float, cancel_statement: Callable[[], int | None],
                 acknowledge: Callable[[str], None] = lambda message: None) -> None:
        self.grace = grace
        self.cancel_statement = cancel_statement  # returns the pid it cancelled, if any
        self.acknowledge = acknowledge  # tells the operator at once what a Ctrl-C (or SIGTERM) does
        self.reason: str | None = None  # "window" | "signal"
        self.signals = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def fired(self) -> bool:
        return self.reason is not None

    def attach(self, proc: subprocess.Popen[bytes] | None) -> None:
        self.proc = proc

    def deadline(self, proc: subprocess.Popen[bytes]) -> None:
        """At the deadline: SIGINT, then after a grace cancel the statement, then after another grace kill."""
        self.reason = self.reason or "window"
        self._thread = threading.Thread(target=self._escalate, args=(proc,), daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """golang-migrate started a step that is not in the plan: stop it now, without waiting for the step. The
        statement is cancelled repeatedly, because the first cancel may arrive before the step's file does."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        _signal(proc, signal.SIGINT)

        def cancel_until_gone() -> None:
            for _ in range(max(1, int(self.grace / 0.1))):
                self._cancel()
                if _wait(proc, 0.1):
                    return
            _signal(proc, signal.SIGKILL)

        threading.Thread(target=cancel_until_gone, daemon=True).start()

    def on_signal(self, signum: int, frame: object) -> None:
        """First Ctrl-C/SIGTERM: stop after the running step; second: cancel the statement; third: kill."""
        self.signals += 1
        self.reason = self.reason or "signal"
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self._acknowledge("stopping: no further step will start")
            return
        if self.signals == 1:
            _signal(proc, signal.SIGINT)
            self._acknowledge("stopping after the running step; Ctrl-C again to cancel it")
        elif self.signals == 2:
            threading.Thread(target=self._cancel, daemon=True).start()
            self._acknowledge("cancelling the running step's statement; Ctrl-C again to kill golang-migrate")
        else:
            _signal(proc, signal.SIGKILL)
            self._acknowledge("killing golang-migrate")

    def _acknowledge(self, message: str) -> None:
        """After the action, never instead of it: a write that fails here (a closed pipe) must not stop the stop."""
        try:
            self.acknowledge(message)
        except Exception:  # noqa: BLE001, S110 - the run's own report still says what happened
            pass

    def _cancel(self) -> None:
        try:
            self.cancel_statement()
        except Exception:  # noqa: BLE001 - best effort: a kill still follows if needed
            pass

    def _escalate(self, proc: subprocess.Popen[bytes]) -> None:
        _signal(proc, signal.SIGINT)  # golang-migrate: "Stopping after this running migration"
        if _wait(proc, self.grace):
            return
        self._cancel()
        if _wait(proc, self.grace):
            return
        _signal(proc, signal.SIGKILL)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=self.grace * 2 + 5)

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Route Ctrl-C and SIGTERM here while golang-migrate runs (main thread only, as Python requires)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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
