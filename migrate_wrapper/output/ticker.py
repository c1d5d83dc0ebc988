"""While a migration step runs: the live line on a terminal, periodic progress records in the log.

One background thread per run, not per step: with a thread per step the wrapper spent more time starting threads
than a trivial migration takes to run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from migrate_wrapper.events import RunInfo, StepInfo


class StepWatch:
    def __init__(self, interval: float, tick: Callable[[RunInfo, StepInfo, float], None]) -> None:
        self.interval = interval
        self.tick = tick  # (run, step, seconds the step has been running)
        self._current: tuple[RunInfo, StepInfo, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self, run: RunInfo, step: StepInfo) -> None:
        self._current = (run, step, time.monotonic())
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def finished(self) -> None:
        self._current = None

    def close(self) -> None:
        self._current = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self._stop = threading.Event()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            current = self._current
            if current is not None:
                run, step, since = current
                self.tick(run, step, time.monotonic() - since)
