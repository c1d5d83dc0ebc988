"""`python -m bench`: the benchmarks of issue 8 in one run, on this machine. See bench/__init__.py."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import benchmarks, report
from bench.benchmarks import Context, Section
from bench.cluster import ROOT, Cluster
from bench.receiver import Receiver

# Targets (issue 8).
APPLY_TARGET_SIZE = 1000
APPLY_TARGET_RATIO = 1.05
# Issue 17's targets: the wrapper's extra wall time on the runs a deploy pipeline makes, and its CPU per step.
FIXED_BUDGETS = {"status": 0.250, "noop": 0.300, "one": 0.400}
CPU_PER_STEP_BUDGET = 0.0003
HELP_BUDGET = 0.200
CHECKS_BUDGET = 1.0
DEAD_COLLECTOR_BUDGET = 2.0
MEMORY_BUDGET = 100 * 2**20

FULL = {"runs": 5, "warmup": 1, "sizes": [100, 1000], "tables": 5000, "rows": 20_000_000, "large": 4,
        "threshold": 100_000, "status_n": 100, "dead_n": 10}
SMOKE = {"runs": 1, "warmup": 0, "sizes": [5], "tables": 20, "rows": 20_000, "large": 2, "threshold": 1_000,
         "status_n": 5, "dead_n": 3}
ALL = ("1", "2", "3", "4", "5")


def _sizes(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})  # the per-step figure needs distinct N


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="migrate-wrapper against raw golang-migrate.")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one run: proves the harness works (CI)")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md", help="results file (markdown)")
    p.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    p.add_argument("--runs", type=int, help="measured runs per figure (default 5; smoke 1)")
    p.add_argument("--warmup", type=int, help="discarded warm-up rounds (default 1; smoke 0)")
    p.add_argument("--sizes", type=_sizes, help="N of benchmark 1, comma-separated (default 100,1000; smoke 5)")
    p.add_argument("--tables", type=int, help="tables of the at-scale database (default 5000; smoke 20)")
    p.add_argument("--rows", type=int, help="rows of the at-scale database (default 20000000; smoke 20000)")
    p.add_argument("--large", type=int, help="large tables holding most rows (default 4; smoke 2)")
    p.add_argument("--threshold", type=int,
                   help="MIGRATION_EXACT_COUNT_THRESHOLD for the at-scale database (default 100000; smoke 1000)")
    p.add_argument("--only", default=",".join(ALL), help="benchmarks to run, e.g. 1,2 (default all; 5 needs 1 or 3)")
    p.add_argument("--migrate-bin", type=Path, default=ROOT / ".tools" / "bin" / "migrate")
    p.add_argument("--wrapper-bin", type=Path, default=ROOT / ".venv" / "bin" / "migrate-wrapper")
    args = p.parse_args(argv)
    defaults = SMOKE if args.smoke else FULL
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    if not set(args.only) <= set(ALL):
        p.error(f"--only takes some of {','.join(ALL)}")
    if args.runs < 1 or args.warmup < 0 or args.large < 1 or args.tables <= args.large:
        p.error("--runs must be ≥ 1, --warmup ≥ 0, --large ≥ 1 and --tables > --large")
    return args


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _precompile(python: Path, work: Path) -> None:
    """The wrapper's bytecode, into the children's PYTHONPYCACHEPREFIX (see benchmarks.Context.base_env); the
    warm-up round does the rest (site-packages)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    subprocess.run([str(python), "-m", "compileall", "-q", str(ROOT / "migrate_wrapper"), str(ROOT / "bench")],
                   env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)


def _on_sigterm(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for path, what in ((args.migrate_bin, "golang-migrate (make setup)"), (args.wrapper_bin, "migrate-wrapper (make setup)")):
        if not path.is_file():
            print(f"bench: {what} not found at {path}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="migrate-wrapper-bench-"))
    cluster = Cluster(work / "pg")
    python = benchmarks.default_python()
    sections: list[Section] = []
    errors: list[str] = []
    imports: list[str] = []
    profile: list[str] = []
    describe = (f"N = {', '.join(map(str, args.sizes))} migrations; {args.tables} tables / {args.rows:,} rows "
                f"({args.large} large, exact-count threshold {args.threshold:,}); {args.runs} run(s) per figure"
                f"{f' + {args.warmup} warm-up' if args.warmup else ''}")
    _log(f"{'smoke' if args.smoke else 'full'} run: {describe}; work dir {work}")
    try:
        _log("starting PostgreSQL")
        cluster.start()
        facts = report.machine(benchmarks.python_version(python), cluster.server_version(), args.migrate_bin)
        _precompile(python, work)
        with Receiver() as receiver:
            ctx = Context(cluster, work, args.migrate_bin, args.wrapper_bin, python, receiver, args.runs, args.warmup,
                          _log)
            plan = [
                ("2", "fixed cost", lambda: benchmarks.fixed_cost(ctx, args.status_n, FIXED_BUDGETS, HELP_BUDGET)),
                ("1", "apply N trivial migrations", lambda: benchmarks.apply_overhead(
                    ctx, args.sizes, APPLY_TARGET_SIZE, APPLY_TARGET_RATIO, CPU_PER_STEP_BUDGET)),
                ("4", "unreachable collector", lambda: benchmarks.dead_collector(ctx, args.dead_n,
                                                                                 DEAD_COLLECTOR_BUDGET)),
                ("3", "checks at scale", lambda: benchmarks.checks_at_scale(
                    ctx, tables=args.tables, rows=args.rows, large=args.large, threshold=args.threshold,
                    checks_budget=CHECKS_BUDGET)),
                ("5", "peak memory", lambda: benchmarks.peak_memory(ctx, MEMORY_BUDGET)),
            ]
            for key, name, run in plan:
                if key not in args.only:
                    continue
                _log(f"benchmark {key}: {name}")
                t0, load0 = time.perf_counter(), os.getloadavg()[0]
                try:
                    section = run()
                    took = time.perf_counter() - t0
                    section.details.append(
                        f"\nThis benchmark took {took:.0f} s; load average (1 min) at its start / end: {load0:.2f} / "
                        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine shows here).")
                    sections.append(section)
                except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                    errors.append(f"benchmark {key} ({name}) failed: {type(exc).__name__}: {exc}")
                    _log(errors[-1])
                    traceback.print_exc(file=sys.stderr)
                _log(f"benchmark {key} took {time.perf_counter() - t0:.0f}s")
            try:
                _log("start-up import profile")
                imports = benchmarks.startup_imports(ctx, args.status_n)
                if "1" in args.only:
                    _log(f"cProfile of one apply of {max(args.sizes)}")
                    profile = benchmarks.profile_apply(ctx, max(args.sizes))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"profiles failed: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        _log("interrupted: cleaning up")
        raise
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{type(exc).__name__}: {exc}")
        _log(errors[-1])
        traceback.print_exc(file=sys.stderr)
        facts = facts if "facts" in locals() else []
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    sections.sort(key=lambda s: s.key)
    seconds = time.perf_counter() - started
    config = {"smoke": args.smoke, "describe": describe, "runs": args.runs, "warmup": args.warmup}
    text = report.render(sections=sections, facts=facts, started=started_at, seconds=seconds, config=config,
                         imports=imports, profile=profile, errors=errors)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")
    print("\n".join(report.summary_table(sections)))
    print(f"\nresults: {args.output} ({seconds:.0f} s)" + (f"; {len(errors)} error(s)" if errors else ""))
    if args.json:
        args.json.write_text(json.dumps({
            "started": started_at.isoformat(), "seconds": seconds, "config": config, "machine": dict(facts),
            "errors": errors,
            "sections": [{"key": s.key, "title": s.title, "rows": [{
                "label": r.label, "raw": r.raw.as_dict() if r.raw else None,
                "wrapper": r.wrapper.as_dict() if r.wrapper else None, "figure": r.figure, "value": r.value,
                "target": r.target, "met": r.met} for r in s.rows]} for s in sections],
        }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if errors else 0
