"""Times the wrapper's own pre- and post-check functions on a big database, in a fresh process of its own.

Run as `python -m bench.scale_worker --env FILE --repeats N [--warmup]` with MIGRATE_WRAPPER_ROOT set; prints one JSON
document on stdout. Each repeat opens a fresh connection (a new backend, cold catalog caches, as a real run) and
calls exactly what `runtime/pipeline.py` calls for an apply:

* pre  = connect + `pre.connectivity` (session.connect), `session.read_status`, `pipeline.pre_checks`
         (files, dirty, checksums, migration_lock, blocking_locks for the pending migration)
* post = `snapshot.snapshot` twice (before and after), `post.row_counts`, `post.schema_summary`

No migration is applied in between (the two snapshots cost what they cost around a real step). Imports happen in
the untimed warm-up repeat; start-up is measured elsewhere. ru_maxrss of this process is reported as well.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_worker")
    parser.add_argument("--env", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", action="store_true")
    args = parser.parse_args(argv)

    from migrate_wrapper.config import settings as settings_mod
    from migrate_wrapper.config import target as target_mod
    from migrate_wrapper.checks import post
    from migrate_wrapper.postgres import snapshot as snapshots
    from migrate_wrapper.events import Listener
    from migrate_wrapper.model.plan import Change
    from migrate_wrapper.runtime import session
    from migrate_wrapper.runtime.context import RunContext
    from migrate_wrapper.runtime.pipeline import pre_checks

    settings = settings_mod.load(args.env)
    target = target_mod.resolve(settings, "operational")[0]
    threshold = settings.migration_exact_count_threshold
    listener = Listener()

    def once() -> dict:
        ctx = RunContext.start("apply", settings, target, listener)
        t0 = time.perf_counter()
        conn, reachable = session.connect(target, settings)
        t1 = time.perf_counter()
        try:
            st = session.read_status(conn, target)
            t2 = time.perf_counter()
            change = Change("up", st.pending, st.pending[-1].version if st.pending else st.state.version)
            checks = pre_checks(ctx, conn, st, [reachable], change)
            t3 = time.perf_counter()
            exclude = {f"{st.state.schema}.{st.state.table}"}
            more = session.connector(target, settings)
            before = snapshots.snapshot(conn, exact_threshold_rows=threshold, exclude=exclude, connect_more=more)
            t4 = time.perf_counter()
            after = snapshots.snapshot(conn, exact_threshold_rows=threshold, exclude=exclude, connect_more=more)
            t5 = time.perf_counter()
            rows = post.row_counts(before, after, fail_on_row_loss=False, estimate_tolerance=0.05)
            summary = post.schema_summary(before, after)
            t6 = time.perf_counter()
            # Make this backend's table statistics visible to the harness's seq_scan reading at once.
            conn.execute("select pg_stat_force_next_flush()")
            conn.execute("select 1")
        finally:
            conn.close()
        exact = sum(1 for c in after.counts.values() if c.exact)
        return {
            "connect": t1 - t0,
            "read_status": t2 - t1,
            "pre_checks": t3 - t2,
            "snapshot_before": t4 - t3,
            "snapshot_after": t5 - t4,
            "compare": t6 - t5,
            "pre": t3 - t0,
            "post": t6 - t3,
            "total": t6 - t0,
            "pending": [m.id for m in st.pending],
            "checks": {c.name: c.status for c in checks} | {"row_counts": rows.status, "schema_summary": summary.status},
            "tables": len(after.counts),
            "exact_tables": exact,
            "estimated": sorted(k for k, c in after.counts.items() if not c.exact),
        }

    if args.warmup:
        once()
    runs = [once() for _ in range(args.repeats)]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"runs": runs, "maxrss_bytes": usage.ru_maxrss * 1024, "threshold": threshold}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
