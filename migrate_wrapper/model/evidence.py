"""What is known of one golang-migrate step that may not have finished, and the verdict proved from it
(runtime/proof.py does the proving; the audit ledger keeps the evidence; repair and the dirty pre-check read it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
NOT_RUN = "not_run"
UNKNOWN = "unknown"


@dataclass
class StepEvidence:
    """What is known of one step; kept in the audit ledger while it runs, so repair can read it after a kill."""

    id: str
    version: int
    direction: str  # up | down
    dirty_version: int | None  # golang-migrate's dirty mark while this step runs: what "committed" leaves
    before_version: int | None  # the version before the step: what "rolled back" leaves
    path: str | None  # the file golang-migrate sends
    started: bool = False  # its "Read and execute" line was read
    pid: int | None = None  # golang-migrate's backend, as seen while the step ran
    backend_start: str | None = None
    xid: int | None = None  # the body's transaction (full xid8)
    body_done: bool = False  # golang-migrate was seen past the body
    mark_xmin: int | None = None  # the transaction that wrote the dirty mark, when the verdict was reached
    verdict: str | None = None
    why: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> StepEvidence | None:
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Verdict:
    kind: str  # COMMITTED | ROLLED_BACK | NOT_RUN | UNKNOWN
    why: str

    @property
    def proved(self) -> bool:
        return self.kind != UNKNOWN
