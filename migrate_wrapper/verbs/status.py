"""status: what is applied, pending and drifted — read-only, with psycopg; golang-migrate is never run."""

from __future__ import annotations

from migrate_wrapper.plan import Status
from migrate_wrapper.target import Target
from migrate_wrapper.verbs import common


def status(target: Target) -> Status:
    conn, _ = common.connect(target)
    try:
        return common.read_status(conn, target)
    finally:
        conn.close()
