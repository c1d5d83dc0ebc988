"""The spans of a run as the recording side builds them. A span leaves for the exporter process once it has ended,
whole: that process turns it into the SDK's ReadableSpan (telemetry/sdk.py), so neither side replays the other's
operations and the wrapper itself never imports OpenTelemetry for a run (its imports alone cost ~150 ms)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class SpanRecord:
    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    start_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)  # (name, attributes, time)
    status: tuple[bool, str] | None = None  # (ok, message); None: unset
    end_ns: int | None = None

    @property
    def ended(self) -> bool:
        return self.end_ns is not None


@dataclass
class RunSpans:
    root: SpanRecord | None = None
    checks: dict[str, SpanRecord] = field(default_factory=dict)  # phase → open checks span
    checks_seen: dict[str, set[int]] = field(default_factory=dict)  # phase → id() of results seen via check()
    checks_rows: dict[str, int] = field(default_factory=dict)  # phase → rows changed (phases that counted rows)
    steps: dict[tuple[str, str], SpanRecord] = field(default_factory=dict)  # (step id, direction) → open step span
    steps_started: dict[tuple[str, str], float] = field(default_factory=dict)
    last_closed: SpanRecord | None = None  # the span the current hook just ended: its log record still belongs to it
    root_events: set[str] = field(default_factory=set)
    rows_changed: int | None = None  # None: no check counted rows
    attributes: dict[str, Any] | None = None  # the run's own span attributes, once built (attributes.run_attributes)
