"""`python -m bench.reader MIGRATE ARGS…`: run golang-migrate and read its output as it arrives, as the wrapper
does (a selector on the pipe, lines split and decoded), doing nothing else. Benchmark 1's floor row: what reading
golang-migrate's steps live costs any Python supervisor, before a single record, span or check."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys

if __name__ == "__main__":
    proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            selector.select()
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                line.decode("utf-8", errors="replace")
    sys.stdout.flush()
    os._exit(proc.wait())
