"""The components the wrapper migrates, declared in the project file `migrate-wrapper.toml` at the project root:

    [components.operational]
    url = "DB_URL"                        # the setting that holds the URL
    migrations = "db/migrations/operational"
    # optional: table = "schema_migrations" (golang-migrate's x-migrations-table), smoke = "db/smoke/operational.sql",
    # schema_doc = "db/schema/operational.md"

    [lint]
    names = "house"                       # new files as YYYYMMDDHHMM_slug; "golang-migrate": any id it accepts

No component is named in code: a project with other components (or other folders) says so in its file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from migrate_wrapper.errors import UsageError, printable

PROJECT_FILE = "migrate-wrapper.toml"
DEFAULT_TABLE = "schema_migrations"  # golang-migrate's own default
ALL = "all"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
_SETTING = re.compile(r"^[A-Z][A-Z0-9_]{0,58}_URL\Z")  # settings reads every *_URL, and masks them all
_KEYS = {"url", "migrations", "table", "smoke", "schema_doc"}


@dataclass(frozen=True)
class Component:
    """One component of the project file: its URL setting, folder and migrations table."""

    name: str
    url_setting: str  # the settings key holding its database URL
    migrations_dir: str  # relative to the project root
    migrations_table: str = DEFAULT_TABLE  # the URL's own x-migrations-table wins
    smoke_file: str = ""  # its smoke-test queries (default db/smoke/<name>.sql)
    schema_doc: str = ""  # its schema document (default db/schema/<name>.md)

    def url_params(self) -> dict[str, str]:
        """What golang-migrate's URL needs for this component unless the operator's URL says otherwise."""
        return {} if self.migrations_table == DEFAULT_TABLE else {"x-migrations-table": self.migrations_table}


def load(root: Path) -> tuple[Component, ...]:
    """The project file's components, in the order it declares them; a bad file is one line and exit 2."""
    return _load(root.resolve())


@functools.cache
def _load(root: Path) -> tuple[Component, ...]:
    import tomllib

    path = root / PROJECT_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: it declares the components",
                         hint=f"run from the project, or pass --project-dir (see the README's {PROJECT_FILE})") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {printable(str(exc), 120)}") from None

    def bad(where: str, why: str) -> UsageError:
        return UsageError(f"{path}: {where}: {why}", hint=f"see the README's {PROJECT_FILE}")

    unknown = set(data) - {"components", "lint"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown key (expected [components.<name>] tables and [lint])")
    _check_lint(data.get("lint", {}), bad)
    declared = data.get("components")
    if not isinstance(declared, dict) or not declared:
        raise bad("components", "no component is declared")
    found: list[Component] = []
    folders: dict[str, str] = {}
    for name, body in declared.items():
        where = f"components.{printable(name, 40)}"
        if not _NAME.match(name) or name == ALL:
            raise bad(where, "a component name is lower-case letters, digits, - and _ (and not 'all')")
        if not isinstance(body, dict):
            raise bad(where, "expected a table")
        if extra := set(body) - _KEYS:
            raise bad(f"{where}.{sorted(extra)[0]}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
        values = {}
        for key in _KEYS:
            if key in body and (not isinstance(body[key], str) or not body[key].strip()):
                raise bad(f"{where}.{key}", "expected a non-empty string")
            values[key] = body.get(key, "")
        for key in ("url", "migrations"):
            if not values[key]:
                raise bad(where, f"'{key}' is required")
        if not _SETTING.match(values["url"]):
            raise bad(f"{where}.url", f"'{printable(values['url'], 40)}' is not a URL setting's name (upper case, "
                      "ending in _URL, e.g. DB_URL)")
        folder = (root / values["migrations"]).resolve()
        if not folder.is_dir():
            raise bad(f"{where}.migrations", f"{values['migrations']} is not a directory")
        if str(folder) in folders:
            raise bad(where, f"uses the folder of component {folders[str(folder)]}: each component has its own")
        folders[str(folder)] = name
        found.append(Component(
            name=name, url_setting=values["url"], migrations_dir=values["migrations"],
            migrations_table=values["table"] or DEFAULT_TABLE,
            smoke_file=values["smoke"] or f"db/smoke/{name}.sql",
            schema_doc=values["schema_doc"] or f"db/schema/{name}.md",
        ))
    return tuple(found)


NAMING = ("house", "golang-migrate")  # [lint] names: YYYYMMDDHHMM_slug for new files, or whatever golang-migrate takes


def _check_lint(table: object, bad) -> None:
    if not isinstance(table, dict):
        raise bad("lint", "expected a table")
    if extra := set(table) - {"names"}:
        raise bad(f"lint.{sorted(extra)[0]}", "unknown key (known: names)")
    if "names" in table and table["names"] not in NAMING:
        raise bad("lint.names", f"expected one of: {', '.join(NAMING)}")


def house_names(root: Path) -> bool:
    """Whether lint holds new files to the house id rule (`[lint] names = "house"`, the default), or only to what
    golang-migrate accepts (`"golang-migrate"`: a project that keeps its own id scheme). No project file: house."""
    import tomllib

    try:
        data = tomllib.loads((root / PROJECT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # lint runs without a valid project file too; components.load says what is wrong with it
    lint = data.get("lint", {})
    return not (isinstance(lint, dict) and lint.get("names") == "golang-migrate")


def names(root: Path) -> list[str]:
    return [c.name for c in load(root)]


def resolve(name: str | None, root: Path) -> list[Component]:
    """`all` means every component in order; None means the caller gave neither --component nor the selector."""
    declared = load(root)
    choices = "|".join(c.name for c in declared)
    if not name:
        raise UsageError("no component chosen", hint=f"pass --component ({choices}|all) or set MIGRATION_COMPONENT")
    if name == ALL:
        return list(declared)
    for component in declared:
        if component.name == name:
            return [component]
    raise UsageError(f"unknown component '{printable(name, 40)}'", hint=f"choose one of: {choices.replace('|', ', ')}, "
                     f"all (declared in {PROJECT_FILE})")


def project_root(explicit: Path | None = None) -> Path:
    """The project: `explicit` (--project-dir, else MIGRATE_WRAPPER_ROOT, which the scripts set), else the nearest of
    the current directory and its parents that holds migrate-wrapper.toml, else the current directory."""
    if explicit:
        return explicit
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    return here
