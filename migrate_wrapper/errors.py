"""Exit codes and the one error base every expected failure derives from.

Nothing below the CLI prints or exits: layers raise a WrapperError subclass carrying the data that explains it, and
the CLI edge turns it into one line and its exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a migration or a post-check failed (or lint found errors)
    USAGE = 2  # usage or configuration error; nothing was run
    PRECHECK = 3  # a pre-check failed; nothing was applied
    APPROVAL = 4  # production approval missing or invalid
    WINDOW = 5  # the time window was exceeded
    PENDING = 6  # status --check: migrations to apply (clean, no drift), or a run in progress
    NOT_CLEAN = 7  # status --check: dirty, or drift between the files and the database
    INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


EXIT_CODE_HELP = (
    "Exit codes: 0 ok; 1 migration, post-check or lint failed; 2 usage or configuration error; "
    "3 pre-check failed; 4 approval missing; 5 time window exceeded; 130 interrupted (Ctrl-C or SIGTERM); "
    "status --check: 6 pending, 7 dirty or drift."
)


def printable(text: str, limit: int | None = None) -> str:
    """Input quoted in a message: control characters (a NUL, an escape, a newline) as escapes, never echoed raw into
    a terminal or a log line; cut at `limit`."""
    clean = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return clean if limit is None or len(clean) <= limit else clean[:limit] + "…"


class WrapperError(Exception):
    """An expected failure: the message is for the operator, already free of secrets."""

    exit_code: ExitCode = ExitCode.FAILED
    outcome: str = "failed"  # the run's outcome in the audit ledger, the logs and the runs metric

    def __init__(self, message: str, *, hint: str | None = None, diff: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.diff = diff  # evidence behind the failure (a schema difference), printed on stdout before the error line

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(WrapperError):
    """Bad arguments, configuration or environment: nothing was run."""

    exit_code = ExitCode.USAGE
    outcome = "refused"


class BinaryError(UsageError):
    """golang-migrate is missing, is not golang-migrate, or lacks the postgres driver."""


class PreCheckFailed(WrapperError):
    exit_code = ExitCode.PRECHECK
    outcome = "guardrail"

    def __init__(self, check: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"pre-check failed: {check}: {reason}", hint=hint)
        self.check = check
        self.reason = reason


class ApprovalMissing(WrapperError):
    exit_code = ExitCode.APPROVAL
    outcome = "refused"


class MigrationFailed(WrapperError):
    """golang-migrate (or a post-check) failed; carries where it stopped."""

    exit_code = ExitCode.FAILED

    def __init__(
        self,
        message: str,
        *,
        version: str | None = None,
        state: str | None = None,
        hint: str | None = None,
        diff: str = "",
    ) -> None:
        super().__init__(message, hint=hint, diff=diff)
        self.version = version
        self.state = state


class WindowExceeded(WrapperError):
    exit_code = ExitCode.WINDOW
    outcome = "guardrail"


class Interrupted(WrapperError):
    """The operator stopped the run (Ctrl-C or SIGTERM); carries the state reached."""

    exit_code = ExitCode.INTERRUPTED
    outcome = "interrupted"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """`1 table`, `3 tables`: in the reasons checks give and the lines listeners write."""
    return f"{n} {word if n == 1 else plural_form or word + 's'}"


def outcome_of(error: BaseException | None) -> str:
    """The outcome a run ended with: ok, or what its error class says (Ctrl-C outside a run's step: interrupted)."""
    if error is None:
        return "ok"
    if isinstance(error, WrapperError):
        return error.outcome
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"


def exit_code_of(error: BaseException | None) -> int:
    """The exit code a command ends with: 0, what its error class says, 130 for Ctrl-C, else 1."""
    if error is None:
        return int(ExitCode.OK)
    if isinstance(error, WrapperError):
        return int(error.exit_code)
    return int(ExitCode.INTERRUPTED if isinstance(error, KeyboardInterrupt) else ExitCode.FAILED)
