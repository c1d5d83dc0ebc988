"""The spans of a run as the recording side keeps them: ids only (the exporter process holds the SDK's spans)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# -- the recording side: the wrapper's own process --------------------------------------------------------------------
# Spans are decided here (names, parents, attributes, times and ids) and sent as plain operations to the exporter
# process, which replays them through the SDK. The wrapper itself never imports OpenTelemetry for a run: importing
# the SDK and its HTTP stack (~150 ms), building each span and encoding it would all be on the run's own time.
@dataclass(eq=False)
class SpanRef:
    trace_id: int
    span_id: int
    ended: bool = False


@dataclass
class RunSpans:
    root: SpanRef | None = None
    checks: dict[str, SpanRef] = field(default_factory=dict)  # phase → open checks span
    checks_seen: dict[str, set[int]] = field(default_factory=dict)  # phase → id() of results seen via check()
    checks_rows: dict[str, int] = field(default_factory=dict)  # phase → rows changed (phases that counted rows)
    steps: dict[tuple[str, str], SpanRef] = field(default_factory=dict)  # (step id, direction) → open step span
    steps_started: dict[tuple[str, str], float] = field(default_factory=dict)
    last_closed: SpanRef | None = None  # the span the current hook just ended: its log record still belongs to it
    root_events: set[str] = field(default_factory=set)
    rows_changed: int | None = None  # None: no check counted rows
    attributes: dict[str, Any] | None = None  # the run's own span attributes, once built (_run_attributes)
