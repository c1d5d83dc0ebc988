"""What lint reports: findings (error or warning, where, what to do), the base it compared with, and their sum."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from migrate_wrapper.errors import WrapperError

ERROR = "error"
WARNING = "warning"


class LintFailed(WrapperError):
    """lint found errors; the report itself has been printed."""


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning
    rule: str
    message: str
    file: str | None = None  # relative to the project root; None for the project as a whole
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    advice: str | None = None
    component: str | None = None


@dataclass(frozen=True)
class Base:
    ref: str | None  # as asked for, or how the default was found
    commit: str | None
    skipped: str | None = None  # why the base rules did not run


@dataclass
class Report:
    components: list[str]
    base: Base
    files: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.level == ERROR for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == WARNING for f in self.findings)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (f.file or "", f.line or 0, f.column or 0, f.rule))

    def document(self) -> dict:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "components": self.components,
            "files_checked": self.files,
            "base": dataclasses.asdict(self.base),
            "findings": [dataclasses.asdict(f) for f in self.sorted()],
        }

    def failure(self) -> LintFailed:
        files = len({f.file for f in self.findings if f.level == ERROR})
        return LintFailed(f"lint found {self.errors} error(s) in {files} file(s) and {self.warnings} warning(s)")
