"""The golang-migrate binaries already vetted (runner.vet), by file: vetting runs the binary twice, on every run
that needs it, while the file it vetted has not changed (same path, inode, size and modification time)."""

from __future__ import annotations

import os
from pathlib import Path


def key(path: Path) -> str | None:
    try:
        st = path.resolve().stat()
    except OSError:
        return None
    return f"{path.resolve()}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"


def read(cache: Path) -> dict[str, str]:
    import json

    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}


def write(cache: Path, key: str, version: str) -> None:
    """Best effort, atomic: a cache that cannot be written only costs the two subprocesses next time."""
    import json
    import tempfile

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known = {k: v for k, v in read(cache).items() if k.split("|", 1)[0] != key.split("|", 1)[0]}
        known[key] = version
        with tempfile.NamedTemporaryFile("w", dir=cache.parent, delete=False, encoding="utf-8") as tmp:
            json.dump(known, tmp)
        os.replace(tmp.name, cache)
    except OSError:
        pass
