"""A component made concrete: its database URL and migration files, all validated before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_wrapper.config import components
from migrate_wrapper.model import migrations
from migrate_wrapper.config.components import Component
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.model.migrations import MigrationSet
from migrate_wrapper.config.settings import Settings


@dataclass(frozen=True)
class Target:
    """A component made concrete: its database URL and its migration files."""

    component: Component
    url: DatabaseUrl
    files: MigrationSet


def resolve(settings: Settings, component: str | None) -> list[Target]:
    """Every chosen component's URL and files, so `--component all` fails before touching the first database."""
    root = settings.project_root()
    chosen = components.resolve(component or settings.migration_component, root)
    return [Target(c, settings.url_for(c), migrations.scan(root / c.migrations_dir, root)) for c in chosen]
