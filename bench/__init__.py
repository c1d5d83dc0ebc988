"""Benchmarks of migrate-wrapper against the raw golang-migrate binary, on this machine, in one run.

`python -m bench` (what `make bench` runs) starts its own throwaway PostgreSQL (scripts/dev/local-postgres.sh in a
temporary directory), generates its own migrations, measures, writes `bench/results.md` and prints the same table.
`--smoke` runs a tiny size that only proves the harness works (CI); `--help` lists the sizes and run counts.

Modules:
  main.py          options, the order of the benchmarks, clean-up (the cluster is destroyed also on failure)
  cluster.py       the throwaway PostgreSQL and admin SQL on it
  proc.py          one timed child process: wall time and peak memory (wait4 rusage, sampled VmHWM)
  stats.py         medians, min, max
  receiver.py      a tiny OTLP/HTTP receiver on 127.0.0.1 that answers 200, and a closed port for a dead collector
  workload.py      generated migration folders and the at-scale database
  benchmarks.py    the five benchmarks of issue 8
  scale_worker.py  a fresh process that times the pre- and post-check functions on one connection
  ablation.py      the wrapper with its JSON log records off, for benchmark 1's ablation rows
  floor.py         the least a status costs with the design card's libraries, for benchmark 2's floor row
  report.py        machine facts and results.md
"""
