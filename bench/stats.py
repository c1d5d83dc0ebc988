"""Medians with min and max: what every figure in results.md is."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    values: tuple[float, ...]

    @classmethod
    def of(cls, values) -> Stats:  # noqa: ANN001
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("no measurements")
        return cls(values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def n(self) -> int:
        return len(self.values)

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n, "values": list(self.values)}


def fmt_seconds(value: float) -> str:
    """Seconds as people read them: ms below 10 s."""
    return f"{value * 1000:.0f} ms" if abs(value) < 10 else f"{value:.2f} s"


def fmt_stats(stats: Stats | None, fmt=fmt_seconds) -> str:  # noqa: ANN001
    if stats is None:
        return "—"
    return f"{fmt(stats.median)} ({fmt(stats.min)}–{fmt(stats.max)})"


def fmt_mb(value: float) -> str:
    return f"{value / 2**20:.1f} MB"
