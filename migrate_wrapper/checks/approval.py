"""The two-person rule: in production, apply and rollback need an approver who is not the author."""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

from migrate_wrapper.errors import ApprovalMissing, UsageError
from migrate_wrapper.config.settings import Settings

APPROVERS_FILE = Path("configs") / "approvers.yml"


def author(settings: Settings) -> str:
    """MIGRATION_AUTHOR, else git's user.email, else the login name."""
    if settings.migration_author:
        return settings.migration_author.strip()
    try:
        email = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL,
            cwd=settings.project_root(),
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        email = ""
    if email:
        return email
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def listed_approvers(root: Path) -> list[str] | None:
    """`approvers:` list in configs/approvers.yml, or None when the file does not exist."""
    path = root / APPROVERS_FILE
    if not path.exists():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    approvers = data.get("approvers") if isinstance(data, dict) else None
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        raise UsageError(f"{path} must hold `approvers:` with a list of names or e-mail addresses")
    return approvers


def check(settings: Settings) -> tuple[str, str | None]:
    """(author, approver) when the run may go ahead; raises ApprovalMissing (exit 4) when it may not."""
    who = author(settings)
    approver = (settings.migration_approved_by or "").strip() or None
    if settings.migration_environment != "production":
        return who, approver
    if approver is None:
        raise ApprovalMissing(
            "production changes need a second engineer's approval",
            hint="set MIGRATION_APPROVED_BY=<reviewer> (not the author) after the review",
        )
    if approver.casefold() == who.casefold():
        raise ApprovalMissing(
            f"the approver ({approver}) is the author",
            hint="a different engineer must review and be named in MIGRATION_APPROVED_BY "
            "(the author is MIGRATION_AUTHOR, else git's user.email, else the login name)",
        )
    allowed = listed_approvers(settings.project_root())
    if allowed is not None and approver.casefold() not in {a.casefold() for a in allowed}:
        raise ApprovalMissing(
            f"{approver} is not listed in {APPROVERS_FILE}", hint="ask a listed approver to review, or add them"
        )
    return who, approver
