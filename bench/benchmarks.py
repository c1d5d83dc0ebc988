"""The five benchmarks of issue 8. Each returns a `Section`: rows for the summary table plus details.

Every comparison interleaves its variants (raw, wrapper, raw, wrapper, …) so machine noise hits both alike, starts
each run from the same state (a fresh database, or a reset), and discards a warm-up round first (full size only).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import proc, workload
from bench.cluster import ROOT, Cluster
from bench.receiver import Receiver, Silent, closed_port
from bench.stats import Stats, fmt_mb, fmt_seconds, fmt_stats

COMPONENT = "operational"
FIXED_COST_RUNS_FACTOR = 3  # benchmark 2 and the status half of 4: runs × 3 (each takes well under a second)
# Variables of the caller's shell that must not leak into the children (the env files say what they need).
_SCRUB_PREFIXES = ("DB_URL", "ANALYTICS_URL", "MIGRATION_", "MIGRATE_", "OTEL_", "PG", "PYTHONPYCACHEPREFIX")


@dataclass
class Row:
    benchmark: str
    label: str
    raw: Stats | None
    wrapper: Stats | None
    figure: str  # the compared figure as text (ratio, difference, peak)
    target: str
    met: bool | None  # None: informational, no target
    value: float | None = None  # the figure as a number


@dataclass
class Section:
    key: str  # "1" … "5"
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines


@dataclass
class Context:
    cluster: Cluster
    work: Path
    migrate_bin: Path
    wrapper_bin: Path
    python: Path
    receiver: Receiver
    runs: int
    warmup: int
    log: Callable[[str], None]
    memory: list[tuple[str, list[proc.Measured]]] = field(default_factory=list)  # for benchmark 5

    def base_env(self, root: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
        # Bytecode cached as an installed package has it, in the work directory (nothing written into the checkout);
        # a shell's PYTHONDONTWRITEBYTECODE=1 would make every run recompile the wrapper's own modules.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.work / "pycache")
        if root is not None:
            env["MIGRATE_WRAPPER_ROOT"] = str(root)
        env.update(extra)
        return env

    def telemetry_env(self, root: Path | None = None) -> dict[str, str]:
        return self.base_env(root, OTEL_EXPORTER_OTLP_ENDPOINT=self.receiver.endpoint)

    def rounds(self) -> range:
        return range(self.warmup + self.runs)

    def kept(self, values: list) -> list:  # noqa: ANN001 - drop the warm-up rounds
        return values[self.warmup:]

    def raw_migrate(self, folder: Path, url: str, *command: str) -> list[str]:
        return [str(self.migrate_bin), "-path", str(folder), "-database", url, *command]

    def wrapper(self, *args: str) -> list[str]:
        return [str(self.wrapper_bin), *args]


def _version(cluster: Cluster, database: str) -> tuple[int | None, bool | None]:
    rows = cluster.query(database, "select version, dirty from public.schema_migrations")
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def _expect_version(cluster: Cluster, database: str, version: int, who: str) -> None:
    got = _version(cluster, database)
    if got != (version, False):
        raise RuntimeError(f"{who} left {database} at {got}, expected ({version}, clean)")


def _ratio_row(bench: str, label: str, raw: Stats, wrapper: Stats, target: float | None) -> Row:
    ratio = wrapper.median / raw.median
    pairs = Stats.of(w / r for r, w in zip(raw.values, wrapper.values))
    figure = f"×{ratio:.3f} (per pair: median ×{pairs.median:.2f}, ×{pairs.min:.2f}–×{pairs.max:.2f})"
    if target is None:
        return Row(bench, label, raw, wrapper, figure, "—", None, ratio)
    return Row(bench, label, raw, wrapper, figure, f"≤ ×{target:.2f}", ratio <= target, ratio)


# --- 1. apply N trivial migrations -------------------------------------------------------------------------------

# Ablations of benchmark 1: variant → (JSON log records off, telemetry on); and its floors, without the wrapper.
ABLATIONS = {"no_logs": (True, True), "no_telemetry": (False, False), "neither": (True, False)}
FLOORS = ("verbose", "reader")  # `migrate -verbose up`; the same read live by bench/reader.py


def apply_overhead(ctx: Context, sizes: list[int], target_size: int, target_ratio: float,
                   cpu_per_step: float) -> Section:
    section = Section("1", "Applying N trivial migrations: raw `migrate up` vs `migrate-wrapper apply`")
    section.details.append(
        "Fresh database per run (drop/create, untimed) for both; runs interleaved raw, wrapper, raw, …; the wrapper "
        "runs as its console script `migrate-wrapper apply -c operational --env F --yes --log-format json` (output to "
        "a file) with every check on and OTEL_EXPORTER_OTLP_ENDPOINT at the harness's OTLP/HTTP receiver. "
        "Raw is `migrate -path DIR -database URL up`. Each run's end state is verified (version N, clean)."
    )
    database = "bench_apply"
    url = ctx.cluster.url(database)
    ablate = len(sizes) >= 2  # the per-step figure needs two sizes
    extra_cpu: dict[str, dict[int, float]] = {v: {} for v in ("wrapper", *FLOORS, *ABLATIONS)}  # beyond raw's CPU
    for n in sizes:
        root = ctx.work / f"apply_{n}"
        folder = workload.trivial_project(root, n)
        env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin)
        last = int(workload.migration_ids(n)[-1].split("_")[0])
        apply_args = ["apply", "-c", COMPONENT, "--env", str(env_file), "--yes", "--log-format", "json"]
        raws, wraps = [], []
        ablated: dict[str, list[proc.Measured]] = {v: [] for v in (*FLOORS, *ABLATIONS)}
        sent: dict[str, int] = {}  # telemetry requests of the wrapper's runs (not the ablations')
        for i in ctx.rounds():
            ctx.cluster.recreate(database)
            raws.append(proc.run(ctx.raw_migrate(folder, url, "up"), env=ctx.base_env()))
            _expect_version(ctx.cluster, database, last, "raw migrate up")
            ctx.cluster.recreate(database)
            before = ctx.receiver.snapshot()
            wraps.append(proc.run(ctx.wrapper(*apply_args), env=ctx.telemetry_env(root),
                                  output_file=ctx.work / f"apply_{n}.log", sample_hwm=True))
            for path, count in ctx.receiver.snapshot().items():  # exported before the process ended
                sent[path] = sent.get(path, 0) + count - before.get(path, 0)
            _expect_version(ctx.cluster, database, last, "migrate-wrapper apply")
            for variant in FLOORS if ablate else ():  # golang-migrate -verbose, alone and read live by Python
                ctx.cluster.recreate(database)
                verbose = [str(ctx.migrate_bin), "-verbose", *ctx.raw_migrate(folder, url, "up")[1:]]
                argv = verbose if variant == "verbose" else [str(ctx.python), "-m", "bench.reader", *verbose]
                ablated[variant].append(proc.run(argv, env=ctx.base_env(), cwd=ROOT))
                _expect_version(ctx.cluster, database, last, variant)
            for variant, (no_logs, telemetry) in ABLATIONS.items() if ablate else ():
                ctx.cluster.recreate(database)
                argv = [str(ctx.python), "-m", "bench.ablation", *(["--no-logs"] if no_logs else []), *apply_args]
                env = ctx.telemetry_env(root) if telemetry else ctx.base_env(root)
                ablated[variant].append(proc.run(argv, env=env, cwd=ROOT,
                                                 output_file=ctx.work / f"apply_{n}_{variant}.log"))
                _expect_version(ctx.cluster, database, last, f"migrate-wrapper apply ({variant})")
            ctx.log(f"  N={n} round {i + 1}/{len(ctx.rounds())}: raw {raws[-1].seconds:.2f}s, "
                    f"wrapper {wraps[-1].seconds:.2f}s")
        raws, wraps = ctx.kept(raws), ctx.kept(wraps)
        raw, wrap = Stats.of(m.seconds for m in raws), Stats.of(m.seconds for m in wraps)
        section.rows.append(_ratio_row("1", f"apply N={n}", raw, wrap, target_ratio if n == target_size else None))
        section.rows[-1].figure += f"; +{fmt_seconds(wrap.median - raw.median)}"
        if n == target_size:
            section.rows[-1].target = f"≤ ×{target_ratio:.2f} (at N={target_size})"
        raw_cpu, wrap_cpu = Stats.of(m.cpu_seconds for m in raws), Stats.of(m.cpu_seconds for m in wraps)
        section.details.append(
            f"- N={n}: raw {fmt_stats(raw)}, wrapper {fmt_stats(wrap)}; per migration raw "
            f"{raw.median / n * 1000:.2f} ms, wrapper {wrap.median / n * 1000:.2f} ms. CPU (user+sys, the process and "
            f"its children): raw {fmt_stats(raw_cpu)}, wrapper {fmt_stats(wrap_cpu)} (golang-migrate included) — the "
            f"wrapper's own ≈ {fmt_seconds(wrap_cpu.median - raw_cpu.median)} competes with golang-migrate and "
            f"PostgreSQL for the machine's {os.cpu_count()} CPUs. Telemetry requests received during these runs "
            f"(warm-up included): {sent or 'none'}."
        )
        extra_cpu["wrapper"][n] = wrap_cpu.median - raw_cpu.median
        for variant, runs in ablated.items():
            if runs:
                extra_cpu[variant][n] = Stats.of(m.cpu_seconds for m in ctx.kept(runs)).median - raw_cpu.median
        ctx.memory.append((f"apply N={n} (wrapper)", wraps))
        ctx.memory.append((f"apply N={n} (raw golang-migrate, for comparison)", raws))
    if len(sizes) >= 2:  # the wrapper's CPU per step, its fixed cost taken out
        small, big = min(sizes), max(sizes)
        per_step = {v: (cpu[big] - cpu[small]) / (big - small) for v, cpu in extra_cpu.items()
                    if small in cpu and big in cpu}
        label = f"wrapper CPU per step ((N={big} − N={small}) / {big - small})"
        section.rows.append(Row("1", label, None, None, f"{per_step['wrapper'] * 1000:.3f} ms",
                                f"≤ {cpu_per_step * 1000:.1f} ms", per_step["wrapper"] <= cpu_per_step,
                                per_step["wrapper"]))
        for variant, what in (("no_logs", "the JSON log records"), ("no_telemetry", "telemetry"),
                              ("neither", "both (no record or span is built, sent or written)")):
            if variant in per_step:
                share = per_step["wrapper"] - per_step[variant]
                figure = f"{per_step[variant] * 1000:.3f} ms" + (
                    f" (so {what} cost {share * 1000:.3f} ms)" if variant != "neither"
                    else f" (so records and telemetry together cost {share * 1000:.3f} ms)")
                section.rows.append(Row("1", f"… the same without {what} (ablation)", None, None, figure, "—", None,
                                        per_step[variant]))
        if "reader" in per_step:
            figure = (f"{per_step['reader'] * 1000:.3f} ms (of which golang-migrate's -verbose "
                      f"{per_step['verbose'] * 1000:.3f} ms)")
            section.rows.append(Row("1", "… floor: golang-migrate -verbose read live by Python, nothing else "
                                         "(`python -m bench.reader`)", None, None, figure, "—", None,
                                    per_step["reader"]))
        if ablate:
            section.details.append(
                "- Ablation, in the same rounds: `python -m bench.ablation [--no-logs] apply …` runs the same wrapper "
                "with its JSON log records switched off (the records are never built), and telemetry is switched off "
                "by leaving OTEL_EXPORTER_OTLP_ENDPOINT unset. What the CPU per step loses then is what "
                "python-json-logger's two records per step and the OpenTelemetry SDK's span and metric point per "
                "step (in the exporter process) cost, building them included; what is left is the wrapper's supervision of "
                "golang-migrate (reading and parsing its output, the plan check, the proof's evidence, the checks "
                "per file). The floor row runs "
                "`migrate -verbose up` under bench/reader.py, which reads its output as it arrives and does nothing "
                "else: what supervising golang-migrate step by step costs any Python process.")
    if target_size not in sizes:
        section.details.append(f"- The target applies at N={target_size}, which this (smoke) run did not measure.")
    ctx.cluster.drop(database)
    return section


# --- 2. fixed cost --------------------------------------------------------------------------------------------


def fixed_cost(ctx: Context, n: int, budgets: dict[str, float], help_budget: float) -> Section:
    """What a deploy pipeline pays on every run: status, an apply with nothing pending, an apply of one migration,
    each against raw golang-migrate in the same rounds (wall and CPU), and --help."""
    section = Section("2", "Fixed cost of a deploy-time run: status, a no-op apply, a one-migration apply, `--help`")
    database = "bench_status"
    url = ctx.cluster.url(database)
    root = ctx.work / "status"
    folder = workload.trivial_project(root, n)
    env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin)
    ctx.cluster.recreate(database)
    proc.run(ctx.raw_migrate(folder, url, "up"), env=ctx.base_env())
    last = int(workload.migration_ids(n)[-1].split("_")[0])
    status_args = ctx.wrapper("status", "-c", COMPONENT, "--env", str(env_file), "--log-format", "json")
    apply_args = ctx.wrapper("apply", "-c", COMPONENT, "--env", str(env_file), "--yes", "--log-format", "json")
    step_back = (ctx.raw_migrate(folder, url, "down", "1"), ctx.base_env())  # untimed: one migration pending again
    # (argv, env, untimed preparation or None); raw and wrapper of one kind run back to back in every round.
    variants: dict[str, tuple[list[str], dict[str, str], tuple | None]] = {
        "raw_version": (ctx.raw_migrate(folder, url, "version"), ctx.base_env(), None),
        "status": (status_args, ctx.base_env(root), None),
        "status_otel": (status_args, ctx.telemetry_env(root), None),
        "raw_noop": (ctx.raw_migrate(folder, url, "up"), ctx.base_env(), None),
        "noop": (apply_args, ctx.base_env(root), None),
        "raw_one": (ctx.raw_migrate(folder, url, "up"), ctx.base_env(), step_back),
        "one": (apply_args, ctx.base_env(root), step_back),
        "help": (ctx.wrapper("--help"), ctx.base_env(), None),
        "python": ([str(ctx.python), "-c", "pass"], ctx.base_env(), None),
        "floor": ([str(ctx.python), "-m", "bench.floor", str(env_file)], ctx.base_env(), None),
    }
    measured: dict[str, list[proc.Measured]] = {k: [] for k in variants}
    rounds = ctx.warmup + ctx.runs * FIXED_COST_RUNS_FACTOR  # cheap runs, noisy machine: more of them
    for _ in range(rounds):
        for key, (argv, env, prepare) in variants.items():
            if prepare is not None:
                proc.run(prepare[0], env=prepare[1])
            measured[key].append(proc.run(argv, env=env, cwd=ROOT, output_file=ctx.work / f"fixed_{key}.log"))
            if key in ("raw_one", "one", "noop", "raw_noop"):
                _expect_version(ctx.cluster, database, last, key)
    kept = {k: ctx.kept(v) for k, v in measured.items()}
    stats = {k: Stats.of(m.seconds for m in v) for k, v in kept.items()}
    cpu = {k: Stats.of(m.cpu_seconds for m in v) for k, v in kept.items()}
    for key, raw_key, label, budget in (
        ("status", "raw_version", "status (no telemetry) vs `migrate version`", budgets["status"]),
        ("status_otel", "raw_version", "status (telemetry to a local receiver) vs `migrate version`", None),
        ("noop", "raw_noop", "apply, nothing pending, vs `migrate up`", budgets["noop"]),
        ("one", "raw_one", "apply of 1 pending migration vs `migrate up`", budgets["one"]),
    ):
        extra = stats[key].median - stats[raw_key].median
        cpu_extra = cpu[key].median - cpu[raw_key].median
        figure = f"+{fmt_seconds(extra)} wall, +{fmt_seconds(cpu_extra)} CPU"
        if budget is None:
            section.rows.append(Row("2", label, stats[raw_key], stats[key], figure, "—", None, extra))
        else:
            section.rows.append(Row("2", label, stats[raw_key], stats[key], figure,
                                    f"≤ raw + {fmt_seconds(budget)}", extra <= budget, extra))
    section.rows.append(Row("2", "`migrate-wrapper --help`", None, stats["help"], fmt_seconds(stats["help"].median),
                            f"≤ {fmt_seconds(help_budget)}", stats["help"].median <= help_budget,
                            stats["help"].median))
    section.rows.append(Row("2", "bare interpreter (`python -c pass`, floor)", None, stats["python"],
                            fmt_seconds(stats["python"].median), "—", None, stats["python"].median))
    floor = stats["floor"].median - stats["raw_version"].median
    section.rows.append(Row("2", "the design's floor for status (`python -m bench.floor`) vs `migrate version`",
                            stats["raw_version"], stats["floor"],
                            f"+{fmt_seconds(floor)} wall, +{fmt_seconds(cpu['floor'].median - cpu['raw_version'].median)}"
                            f" CPU; status is +{fmt_seconds(stats['status'].median - stats['floor'].median)} above it",
                            "—", None, floor))
    section.details.append(
        f"Database with {n} applied migrations (from the same trivial set); {ctx.runs * FIXED_COST_RUNS_FACTOR} "
        "rounds (each takes well under a second, so more of them) interleave each raw golang-migrate command with "
        "the wrapper's counterpart, `--help` and a bare interpreter. The one-migration runs first step back one "
        "migration with raw `migrate down 1` (untimed). Status is read-only (psycopg; golang-migrate is not run by "
        "it). CPU is user + system of the process and its children (rusage), golang-migrate included. The floor "
        "row runs bench/floor.py: the design card's libraries that status's path needs (typer, pydantic-settings, "
        "psycopg) imported, a settings model read from the same env file, one connection and the version query, "
        "leaving as the wrapper does (no interpreter teardown); none of the wrapper's own code runs. It leaves out "
        "work any status must do (the project file, the folder scan, drift hashing, the ledger and lock queries, "
        "the report), so the wrapper's distance above it is not all avoidable."
    )
    section.details.append("- CPU medians: " + ", ".join(f"{k} {fmt_seconds(v.median)}" for k, v in cpu.items()))
    ctx.cluster.drop(database)
    return section


# --- 3. checks at scale ----------------------------------------------------------------------------------------


def checks_at_scale(ctx: Context, *, tables: int, rows: int, large: int, threshold: int,
                    checks_budget: float) -> Section:
    section = Section("3", "Checks at scale")
    database = "bench_scale"
    scale = workload.build_scale(ctx.cluster, database, tables=tables, rows=rows, large=large, threshold=threshold,
                                 log=ctx.log)
    ctx.log(f"  built in {scale.build_seconds:.0f}s ({scale.size_bytes / 2**30:.2f} GiB)")
    try:
        _checks_at_scale(ctx, section, scale, checks_budget)
    finally:
        ctx.cluster.drop(database)
    return section


def _checks_at_scale(ctx: Context, section: Section, scale: workload.ScaleDb, checks_budget: float) -> None:
    url = ctx.cluster.url(scale.name)
    root = ctx.work / "scale"
    folder = workload.scale_project(root, scale)
    extra = {} if scale.threshold == 100_000 else {"MIGRATION_EXACT_COUNT_THRESHOLD": scale.threshold}
    env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin, **extra)
    version = int(workload.SCALE_MIGRATION.split("_")[0])
    before = workload.seq_scans(ctx.cluster, scale)

    # (a) the check functions themselves, in a fresh process, one fresh connection per repeat
    worker = proc.run([str(ctx.python), "-m", "bench.scale_worker", "--env", str(env_file), "--repeats",
                       str(ctx.runs), *(["--warmup"] if ctx.warmup else [])],
                      env=ctx.base_env(root), cwd=ROOT, keep_output=True, timeout=900)
    import json

    report = json.loads(worker.output)
    runs = report["runs"]
    part = {key: Stats.of(r[key] for r in runs) for key in
            ("connect", "read_status", "pre_checks", "snapshot_before", "snapshot_after", "compare", "pre", "post",
             "total")}
    total = part["total"]
    section.rows.append(Row("3", f"pre- + post-checks, {scale.tables:,} tables / {scale.rows:,} rows", None,
                            total, fmt_seconds(total.median), f"≤ {fmt_seconds(checks_budget)}",
                            total.median <= checks_budget, total.median))
    after_worker = workload.seq_scans(ctx.cluster, scale)

    # (b) end to end: one trivial migration on that database, raw `migrate up` vs `migrate-wrapper apply`
    raws, wraps = [], []
    for _ in ctx.rounds():
        workload.reset_scale(ctx.cluster, scale)
        raws.append(proc.run(ctx.raw_migrate(folder, url, "up"), env=ctx.base_env()))
        _expect_version(ctx.cluster, scale.name, version, "raw migrate up")
        workload.reset_scale(ctx.cluster, scale)
        wraps.append(proc.run(ctx.wrapper("apply", "-c", COMPONENT, "--env", str(env_file), "--yes", "--log-format",
                                          "json"), env=ctx.telemetry_env(root), output_file=ctx.work / "scale.log",
                              sample_hwm=True))
        _expect_version(ctx.cluster, scale.name, version, "migrate-wrapper apply")
    workload.reset_scale(ctx.cluster, scale)
    raws, wraps = ctx.kept(raws), ctx.kept(wraps)
    raw, wrap = Stats.of(m.seconds for m in raws), Stats.of(m.seconds for m in wraps)
    row = _ratio_row("3", "apply 1 migration on that database (end to end)", raw, wrap, None)
    row.figure = f"+{fmt_seconds(wrap.median - raw.median)} ({row.figure})"
    row.value = wrap.median - raw.median
    section.rows.append(row)
    ctx.memory.append(("apply 1 migration at scale (wrapper)", wraps))
    ctx.memory.append(("apply 1 migration at scale (raw golang-migrate, for comparison)", raws))
    ctx.memory.append(("check functions at scale (helper process, RUSAGE_SELF)",
                       [proc.Measured((), 0.0, 0, report["maxrss_bytes"], None, "")]))

    # (c) no sequential scan of a table above the threshold
    import time

    time.sleep(1.0)  # the wrappers' backends flush their statistics as they exit
    after = workload.seq_scans(ctx.cluster, scale)
    control = workload.control_scan(ctx.cluster, scale, after)
    big_scans = {t: after.get(t, 0) - before.get(t, 0) for t in scale.large}
    big_scans_worker = {t: after_worker.get(t, 0) - before.get(t, 0) for t in scale.large}
    scanned_small = sum(1 for t in after if t not in scale.large and after[t] > before.get(t, 0))
    total_big = sum(big_scans.values())
    section.rows.append(Row("3", f"sequential scans of the {len(scale.large)} tables above the threshold", None, None,
                            str(total_big), "0", total_big == 0, float(total_big)))

    last = runs[-1]
    section.details += [
        f"Database `{scale.name}`: {scale.tables} tables — {len(scale.large)} large "
        f"({', '.join(scale.large)}), {len(scale.medium)} medium of {scale.threshold // 2} rows (below the exact-count "
        f"threshold {scale.threshold}, counted exactly), {scale.small} small of 0–19 rows; {scale.rows:,} rows, "
        f"{scale.size_bytes / 2**30:.2f} GiB; built once in {scale.build_seconds:.0f} s (generate_series, VACUUM "
        f"ANALYZE, CHECKPOINT), dropped at the end. Pending migration: `{workload.SCALE_MIGRATION}` "
        f"(`alter table {scale.touched} add column bench_note text`), reset between runs.",
        "",
        "Check functions (fresh process `python -m bench.scale_worker`, a fresh connection per repeat, imports warmed "
        "up first), medians (min–max):",
        "",
        "| part | time |",
        "|---|---|",
        f"| connect + connectivity | {fmt_stats(part['connect'])} |",
        f"| read_status (schema_migrations, ledger, plan) | {fmt_stats(part['read_status'])} |",
        f"| pipeline.pre_checks (files, dirty, checksums, migration_lock, blocking_locks) | "
        f"{fmt_stats(part['pre_checks'])} |",
        f"| **pre total** | **{fmt_stats(part['pre'])}** |",
        f"| snapshot.snapshot (before) | {fmt_stats(part['snapshot_before'])} |",
        f"| snapshot.snapshot (after) | {fmt_stats(part['snapshot_after'])} |",
        f"| post.row_counts + post.schema_summary | {fmt_stats(part['compare'])} |",
        f"| **post total** | **{fmt_stats(part['post'])}** |",
        f"| **pre + post** | **{fmt_stats(part['total'])}** |",
        "",
        f"Check results: {', '.join(f'{k} {v}' for k, v in last['checks'].items())}. Snapshot: {last['tables']} "
        f"tables, {last['exact_tables']} counted exactly, estimated: {', '.join(last['estimated']) or 'none'}.",
        "",
        f"End to end: raw {fmt_stats(raw)}, wrapper {fmt_stats(wrap)}.",
        "",
        "seq_scan deltas (pg_stat_user_tables; fresh connections; the helper forces its statistics flush) of the "
        f"large tables — after the check functions: {big_scans_worker}; after the end-to-end runs too: {big_scans}. "
        f"Tables below the threshold scanned (exact counts, expected): {scanned_small}. Control: a deliberate "
        f"`count(*)` of {scale.large[-1]} afterwards showed up as {control} sequential scan(s) (expected 1), so a scan "
        "by the wrapper would have been seen.",
    ]


# --- 4. unreachable collector -----------------------------------------------------------------------------------


def dead_collector(ctx: Context, n: int, budget: float) -> Section:
    section = Section("4", "Unreachable collector: added wall time")
    port = closed_port()
    dead = f"http://127.0.0.1:{port}"
    database = "bench_dead"
    url = ctx.cluster.url(database)
    root = ctx.work / "dead"
    folder = workload.trivial_project(root, n)
    env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin)
    last = int(workload.migration_ids(n)[-1].split("_")[0])
    status = ctx.wrapper("status", "-c", COMPONENT, "--env", str(env_file), "--log-format", "json")
    apply = ctx.wrapper("apply", "-c", COMPONENT, "--env", str(env_file), "--yes", "--log-format", "json")
    off_env = ctx.base_env(root)
    dead_env = ctx.base_env(root, OTEL_EXPORTER_OTLP_ENDPOINT=dead)
    results: dict[str, list[proc.Measured]] = {"status_off": [], "status_dead": [], "apply_off": [], "apply_dead": [],
                                               "silent_off": [], "silent_on": []}
    warned = 0
    ctx.cluster.recreate(database)
    proc.run(ctx.raw_migrate(folder, url, "up", "1"), env=ctx.base_env())
    for _ in range(ctx.warmup + ctx.runs * FIXED_COST_RUNS_FACTOR):
        results["status_off"].append(proc.run(status, env=off_env))
        log = ctx.work / "dead_status.log"
        results["status_dead"].append(proc.run(status, env=dead_env, output_file=log))
        warned += "telemetry_export_failed" in log.read_text(errors="replace")
    with Silent() as silent:
        silent_env = ctx.base_env(root, OTEL_EXPORTER_OTLP_ENDPOINT=silent.endpoint)
        for _ in ctx.rounds():
            results["silent_off"].append(proc.run(status, env=off_env))
            log = ctx.work / "silent_status.log"
            results["silent_on"].append(proc.run(status, env=silent_env, output_file=log))
            warned += "telemetry_export_failed" in log.read_text(errors="replace")
    for _ in ctx.rounds():
        ctx.cluster.recreate(database)
        results["apply_off"].append(proc.run(apply, env=off_env))
        _expect_version(ctx.cluster, database, last, "migrate-wrapper apply")
        ctx.cluster.recreate(database)
        log = ctx.work / "dead_apply.log"
        results["apply_dead"].append(proc.run(apply, env=dead_env, output_file=log))
        _expect_version(ctx.cluster, database, last, "migrate-wrapper apply")
        warned += "telemetry_export_failed" in log.read_text(errors="replace")
    stats = {k: Stats.of(m.seconds for m in ctx.kept(v)) for k, v in results.items()}
    for off_key, on_key, label in (("status_off", "status_dead", "status: no endpoint → dead endpoint (refused)"),
                                   ("apply_off", "apply_dead", f"apply N={n}: no endpoint → dead endpoint (refused)"),
                                   ("silent_off", "silent_on", "status: no endpoint → silent collector (no answer)")):
        off, on = stats[off_key], stats[on_key]
        added = on.median - off.median
        section.rows.append(Row("4", label, off, on, f"+{fmt_seconds(added)}", f"≤ +{fmt_seconds(budget)}",
                                added <= budget, added))
    section.details += [
        f"Dead collector: OTEL_EXPORTER_OTLP_ENDPOINT={dead} (a loopback port nobody listens on: connection refused "
        "at once). Silent collector: a loopback socket that accepts connections and never answers (a hung collector, "
        "or a proxy in front of a dead one; a firewall that drops packets behaves alike). Baseline: no endpoint at "
        "all (telemetry off); in the table the 'raw' column is the baseline, the 'wrapper' column the run with the "
        f"unreachable endpoint. Status on a database at version 1 of {n} ({len(ctx.kept(results['status_dead']))} "
        f"runs with a dead, {len(ctx.kept(results['silent_on']))} with a silent collector); apply of {n} trivial "
        f"migrations on a fresh database per run ({len(ctx.kept(results['apply_dead']))} runs). Every run still "
        "exits 0.",
        f"Runs whose log has the `telemetry_export_failed` warning: {warned} of "
        f"{len(results['status_dead']) + len(results['apply_dead']) + len(results['silent_on'])}.",
    ]
    ctx.cluster.drop(database)
    return section


# --- 5. peak memory ---------------------------------------------------------------------------------------------


def peak_memory(ctx: Context, budget_bytes: int) -> Section:
    section = Section("5", "Peak memory (RSS) of the wrapper process")
    for label, measured in ctx.memory:
        rss = Stats.of(max(m.maxrss_bytes, m.hwm_bytes or 0) for m in measured)
        hwm = [m.hwm_bytes for m in measured if m.hwm_bytes]
        comparison = "raw golang-migrate" in label
        peak = rss.max
        section.rows.append(Row(
            "5", label, None, None,
            f"peak {fmt_mb(peak)} (median {fmt_mb(rss.median)})" + (f"; wrapper process alone {fmt_mb(max(hwm))}"
                                                                     if hwm else ""),
            "—" if comparison else f"≤ {fmt_mb(budget_bytes)}", None if comparison else peak <= budget_bytes, peak,
        ))
    section.details.append(
        "Peak = the largest over the runs of `ru_maxrss` (os.wait4 of the child; for a wrapper run the kernel reports "
        "the larger of the wrapper and the golang-migrate child it reaped) and the wrapper's own VmHWM, sampled from "
        "/proc/<pid>/status every 20 ms ('wrapper process alone'). The target is judged on that peak."
    )
    return section


# --- start-up imports -------------------------------------------------------------------------------------------

_HEAVY = ("typer", "click", "rich", "pydantic", "pydantic_settings", "psycopg", "opentelemetry", "pglast", "yaml",
          "pythonjsonlogger", "google.protobuf", "requests", "urllib3", "dotenv")


def import_profile(ctx: Context, args: list[str], env: dict[str, str]) -> list[tuple[str, float]]:
    """`python -X importtime`: the cumulative import time of each top-level package (ms), largest first."""
    done = subprocess.run([str(ctx.python), "-X", "importtime", "-m", "migrate_wrapper", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=ROOT)
    cumulative: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        name = match.group(4)
        depth = len(match.group(3))
        if depth <= 2 or any(name == h for h in _HEAVY):  # top-level imports and the known heavy packages
            cumulative[name] = max(cumulative.get(name, 0.0), int(match.group(2)) / 1000)
    return sorted(cumulative.items(), key=lambda kv: -kv[1])


def profile_apply(ctx: Context, n: int) -> list[str]:
    """One `apply` of n trivial migrations under cProfile (telemetry on): where the wrapper's own time goes."""
    import pstats

    root = ctx.work / f"profile_{n}"
    workload.trivial_project(root, n)
    database = "bench_profile"
    url = ctx.cluster.url(database)
    env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin)
    ctx.cluster.recreate(database)
    out = ctx.work / "apply.prof"
    # cli.main, not the console script's cli.entry: entry leaves with os._exit, before cProfile could write its file.
    script = ctx.work / "profile_main.py"
    script.write_text("from migrate_wrapper.cli.main import main\n\nmain()\n")
    measured = proc.run([str(ctx.python), "-m", "cProfile", "-o", str(out), str(script), "apply", "-c",
                         COMPONENT, "--env", str(env_file), "--yes", "--log-format", "json"],
                        env=ctx.telemetry_env(root), output_file=ctx.work / "profile.log")
    ctx.cluster.drop(database)
    stats = pstats.Stats(str(out))
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        edge = ("/cli/app.py", "/cli/main.py", "/__main__.py")  # the boundary wrappers: everything runs under them
        if "/migrate_wrapper/" in filename and not filename.endswith(edge):
            rows.append((ct, nc, f"{filename.split('/migrate_wrapper/')[-1]}:{line} {name}"))
    rows.sort(reverse=True)
    lines = [f"`python -m cProfile` of `migrate_wrapper.cli.main.main` running `apply` of {n} trivial migrations, "
             f"telemetry on (one run; {measured.seconds:.2f} s wall under the profiler, "
             f"CPU {measured.cpu_seconds:.2f} s with golang-migrate). Cumulative time of the wrapper's own functions "
             "(includes waiting on golang-migrate and on threads, and imports done inside them):", "",
             "| cumulative | calls | function |", "|---|---|---|"]
    lines += [f"| {ct:.3f} s | {nc} | `{where}` |" for ct, nc, where in rows[:25]]
    return lines


def startup_imports(ctx: Context, n: int) -> list[str]:
    root = ctx.work / "imports"
    workload.trivial_project(root, n)
    database = "bench_imports"
    url = ctx.cluster.url(database)
    env_file = workload.write_env(root / "migrate.env", url, ctx.migrate_bin)
    ctx.cluster.recreate(database)
    lines = ["`python -X importtime -m migrate_wrapper …` (one run each, cumulative ms of the largest imports; "
             "single runs, so ±20 %):", ""]
    for label, args, env in (
        ("--help", ["--help"], ctx.base_env()),
        ("status (no telemetry)", ["status", "-c", COMPONENT, "--env", str(env_file), "--log-format", "json"],
         ctx.base_env(root)),
        ("status (telemetry on)", ["status", "-c", COMPONENT, "--env", str(env_file), "--log-format", "json"],
         ctx.telemetry_env(root)),
        (f"apply of {n} (telemetry on)", ["apply", "-c", COMPONENT, "--env", str(env_file), "--yes", "--log-format",
                                         "json"], ctx.telemetry_env(root)),
    ):
        top = [(name, ms) for name, ms in import_profile(ctx, args, env) if ms >= 5][:12]
        lines.append(f"- `{label}`: " + ", ".join(f"{name} {ms:.0f}" for name, ms in top))
    ctx.cluster.drop(database)
    return lines


def python_version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()


def default_python() -> Path:
    venv = ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)
