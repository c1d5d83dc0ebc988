"""The components the wrapper migrates: one entry each, so a third component is one more line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migrate_wrapper.errors import UsageError


@dataclass(frozen=True)
class Component:
    name: str
    url_setting: str  # the settings key holding its database URL
    migrations_dir: str  # relative to the project root
    migrations_table: str = "schema_migrations"  # golang-migrate's default; the URL's x-migrations-table wins


COMPONENTS: tuple[Component, ...] = (
    Component("operational", "DB_URL", "db/migrations/operational"),
    Component("analytics", "ANALYTICS_URL", "db/migrations/analytics"),
)

ALL = "all"


def names() -> list[str]:
    return [c.name for c in COMPONENTS]


def resolve(name: str | None) -> list[Component]:
    """`all` means every component in order; None means the caller gave neither --component nor the selector."""
    if not name:
        raise UsageError(
            "no component chosen",
            hint=f"pass --component ({'|'.join(names())}|all) or set MIGRATION_COMPONENT",
        )
    if name == ALL:
        return list(COMPONENTS)
    for component in COMPONENTS:
        if component.name == name:
            return [component]
    raise UsageError(f"unknown component '{name}'", hint=f"choose one of: {', '.join(names())}, all")


def project_root(explicit: Path | None = None) -> Path:
    """Where db/migrations lives: `explicit` (MIGRATE_WRAPPER_ROOT, which the scripts set), else the nearest of the
    current directory and its parents that has db/migrations, else the current directory."""
    if explicit:
        return explicit
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "db" / "migrations").is_dir():
            return candidate
    return here
