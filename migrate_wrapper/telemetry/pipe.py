"""The exporter process: forked at the start of a traced command, fed finished spans and metric points through a
pipe that never blocks the run, and asked for its export result (bounded) at shutdown."""

from __future__ import annotations


import json
import os
import pickle
import signal
import threading
import time

from migrate_wrapper.telemetry.config import exporter_environment


class ExporterProcess:
    """The exporter process (see sdk.serve), fed through a pipe that never blocks the run: what the
    pipe cannot take at once waits in `pending` for the next write or for shutdown.

    An ended span is sent `soon`: a flusher thread writes what is pending within `FLUSH_SECONDS` (whatever the run
    does next may take long: what happened so far leaves while it does), so a run of many short steps wakes the
    exporter a few times a second instead of once per step, on a machine whose cores golang-migrate and PostgreSQL
    are using. `FLUSH_BYTES` piled up are written at once."""

    FLUSH_BYTES = 32 * 1024
    FLUSH_SECONDS = 0.1  # well inside the SDK batch processor's own delay (sdk.EXPORT_DELAY_MS)

    def __init__(self, pid: int, ops_fd: int, result_fd: int) -> None:
        self.pid, self.ops_fd, self.result_fd = pid, ops_fd, result_fd
        self.pending = bytearray()
        self.broken = False
        self._lock = threading.Lock()  # pending and ops_fd: the run's thread and the flusher
        self._due = threading.Event()
        self._flusher: threading.Thread | None = None
        os.set_blocking(ops_fd, False)

    def send(self, op: tuple, *, now: bool = False, soon: bool = False) -> None:
        # Never from a signal handler (the lock is not reentrant): the Stopper's acknowledgement reaches telemetry
        # as a note that is no root-span event (spans.ROOT_NOTE_EVENTS), which sends nothing.
        if self.broken:
            return
        data = pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self.pending += data
            if now or len(self.pending) >= self.FLUSH_BYTES:
                self._write()
                return
        if soon:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_soon, name="telemetry-pipe", daemon=True)
                self._flusher.start()
            self._due.set()

    def _flush_soon(self) -> None:
        while self._due.wait():
            time.sleep(self.FLUSH_SECONDS)
            with self._lock:
                self._due.clear()
                if self.ops_fd < 0:
                    return
                if not self._write():  # the pipe is full (the exporter is busy): try again in a moment
                    self._due.set()

    def _write(self) -> bool:
        """Write what the pipe takes now; True when nothing is left. Called with the lock held."""
        while self.pending:
            try:
                written = os.write(self.ops_fd, self.pending)
            except BlockingIOError:
                return False
            except OSError:  # the exporter process is gone: its absence is reported at shutdown
                self.broken = True
                self.pending.clear()
                return True
            del self.pending[:written]
        return True

    def finish(self, budget: float) -> list[str] | None:
        """Send what is left and "shutdown", then wait for the answer; None when none came in time."""
        import select

        deadline = time.monotonic() + budget + 1.0  # the exporter's own flush is bounded by `budget`
        self.send(("shutdown",), now=True)
        try:
            while not self._locked_write():
                if not select.select([], [self.ops_fd], [], max(0.0, deadline - time.monotonic()))[1]:
                    return None
            with self._lock:
                self._close("ops_fd")  # end of the operations, also for an exporter that missed "shutdown"
            answer = b""
            while True:
                if not select.select([self.result_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    return None
                chunk = os.read(self.result_fd, 65536)
                if not chunk:
                    break
                answer += chunk
            if not answer:
                return ["the telemetry exporter process ended before it could export"]
            return [str(reason) for reason in json.loads(answer.decode("utf-8"))]
        except (OSError, ValueError):
            return None
        finally:
            self.stop()

    def _locked_write(self) -> bool:
        with self._lock:
            return self._write()

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            setattr(self, name, -1)  # never closed twice: the number may belong to another file by then
            os.close(fd)

    def stop(self) -> None:
        with self._lock:
            self._close("ops_fd")
        self._due.set()  # the flusher finds the pipe closed and ends
        self._close("result_fd")
        try:
            os.kill(self.pid, signal.SIGKILL)  # gone already after answering; else it stops waiting now
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError, OSError):
            pass


def fork_exporter() -> ExporterProcess | None:
    """The exporter process, forked from this one: it starts importing the SDK at once, on the other core."""
    if not hasattr(os, "fork"):
        return None
    ops_read, ops_write = os.pipe()
    result_read, result_write = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for fd in (ops_read, ops_write, result_read, result_write):
            os.close(fd)
        return None
    if pid == 0:  # the exporter process: never returns into the wrapper's code
        try:
            _become_exporter(parent, keep=(ops_read, result_write))
            from migrate_wrapper.telemetry import sdk

            sdk.serve(ops_read, result_write)
        finally:
            os._exit(0)
    os.close(ops_read)
    os.close(result_write)
    return ExporterProcess(pid, ops_write, result_read)


def _become_exporter(parent: int, keep: tuple[int, ...]) -> None:
    """In the forked child: no terminal signals (the wrapper decides when to flush), killed with the wrapper, and
    none of the wrapper's files: a pipe reader waiting for the wrapper's stdout to close must not wait for us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the wrapper died before the line above took effect
        os._exit(0)
    kept = exporter_environment(os.environ)  # none of the wrapper's secrets stay in this process's memory
    os.environ.clear()
    os.environ.update(kept)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(low, os.sysconf("SC_OPEN_MAX")))
