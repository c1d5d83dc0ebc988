"""Machine facts and the results file (markdown), also printed to stdout."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

from bench.benchmarks import Row, Section
from bench.cluster import ROOT
from bench.stats import fmt_stats


def _cmd(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return (done.stdout.strip() or done.stderr.strip() or "not available").splitlines()[0]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine(python_version: str, postgres_version: str, migrate_bin: Path) -> list[tuple[str, str]]:
    commit = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return [
        ("CPUs (nproc)", _cmd(["nproc"])),
        ("CPU model", _cpu_model()),
        ("memory", _memory()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", python_version),
        ("Go", _cmd(["go", "version"])),
        ("PostgreSQL (server)", postgres_version),
        ("golang-migrate", _cmd([str(migrate_bin), "-version"])),
        ("migrate-wrapper checkout", f"{commit}{' (with uncommitted changes)' if dirty and dirty != 'not available' else ''}"),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def _met(row: Row) -> str:
    return "—" if row.met is None else ("**met**" if row.met else "**NOT MET**")


def summary_table(sections: list[Section]) -> list[str]:
    lines = ["| # | measurement | raw golang-migrate / baseline: median (min–max) | migrate-wrapper: median (min–max) "
             "| figure | target | result |", "|---|---|---|---|---|---|---|"]
    for section in sections:
        for row in section.rows:
            lines.append(f"| {row.benchmark} | {row.label} | {fmt_stats(row.raw)} | {fmt_stats(row.wrapper)} | "
                         f"{row.figure} | {row.target} | {_met(row)} |")
    return lines


def render(*, sections: list[Section], facts: list[tuple[str, str]], started: dt.datetime, seconds: float,
           config: dict, imports: list[str], profile: list[str], errors: list[str]) -> str:
    smoke = config.get("smoke")
    rows = [r for s in sections for r in s.rows if r.met is not None]
    facts = facts + [("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg()))]
    missed = [r for r in rows if not r.met]
    out = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench` (`make bench`) on {started:%Y-%m-%d %H:%M} UTC; the whole run took "
        f"{seconds:.0f} s. Do not edit by hand: run `make bench` again.",
        "",
        (f"**Smoke size** ({config['describe']}): proves the harness works; the figures are not the targets' sizes "
         "and mean nothing about performance." if smoke else f"Size: {config['describe']}."),
        "",
        f"Targets: {len(rows) - len(missed)} of {len(rows)} met"
        + (f"; NOT met: {', '.join(f'{r.benchmark}. {r.label}' for r in missed)}." if missed else "."),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in facts],
        "",
        "## Summary",
        "",
        *summary_table(sections),
        "",
    ]
    for section in sections:
        out += [f"## {section.key}. {section.title}", ""]
        out += summary_table([section]) + [""]
        out += section.details + [""]
    if imports:
        out += ["## Start-up imports", ""] + imports + [""]
    if profile:
        out += ["## Profile of one apply", ""] + profile + [""]
    if errors:
        out += ["## Errors", "", *[f"- {e}" for e in errors], ""]
    out += [
        "## Method",
        "",
        "- Wall time of whole processes (fork to reap, `time.perf_counter`), medians with min–max over "
        f"{config['runs']} run(s) per figure (benchmark 2 and the dead-collector status rows of 4: three times as "
        "many)" + (f" after {config['warmup']} discarded warm-up round(s)" if config["warmup"] else "")
        + "; variants interleaved.",
        "- Throwaway PostgreSQL 15 from scripts/dev/local-postgres.sh (fsync, full_page_writes, synchronous_commit "
        "off) on 127.0.0.1, the same for raw golang-migrate and the wrapper.",
        "- Children get a scrubbed environment (no DB_URL, MIGRATION_*, OTEL_*, PG*); the wrapper reads an env file "
        "with DB_URL, MIGRATION_ENVIRONMENT=dev and MIGRATE_BIN, and MIGRATE_WRAPPER_ROOT points at a generated "
        "project root.",
        "- Python bytecode is cached as in an installed package (PYTHONPYCACHEPREFIX in the work directory, the "
        "wrapper precompiled, site-packages compiled by the warm-up round; PYTHONDONTWRITEBYTECODE is dropped for "
        "the children).",
        "",
    ]
    return "\n".join(out)
