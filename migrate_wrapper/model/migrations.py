"""Migration files on disk: what golang-migrate will see, and what the house naming rules expect.

golang-migrate accepts any `<digits>_<title>.(up|down).<ext>` and silently ignores other files: status and the
pre-checks say which files it will use. The house rule (`YYYYMMDDHHMM_slug`, HOUSE_ID) is lint's, for new files:
histories adopted from elsewhere keep their own ids.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from migrate_wrapper.errors import UsageError, printable

GOLANG_MIGRATE_NAME = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.(.*)$")
HOUSE_ID = re.compile(r"^(\d{12})_([a-z0-9]+(?:_[a-z0-9]+)*)\Z")  # \Z: "$" would accept a trailing newline
MAX_VERSION = 2**63 - 1  # golang-migrate parses uint64 but stores bigint


@dataclass(frozen=True)
class Migration:
    """One version's files, as golang-migrate will see them."""

    version: int
    slug: str
    version_text: str  # as written in the file name (leading zeros kept)
    up: Path | None = None
    down: Path | None = None

    @property
    def id(self) -> str:
        return f"{self.version_text}_{self.slug}"

    def path(self, direction: str) -> Path | None:
        """The file golang-migrate runs for `direction` (up or down), if there is one."""
        return self.up if direction == "up" else self.down

    def sha256(self, direction: str = "up") -> str | None:
        path = self.path(direction)
        return file_sha256(path) if path else None


# Above this size a migration's SQL is not read whole, parsed or linted (a warning names the file): pglast and squawk
# need many times a file's size in memory, and a data load of tens of MB is golang-migrate's to stream, not ours.
ANALYSED_MAX_BYTES = 2 * 1024 * 1024


def too_big(path: Path) -> str | None:
    """Why `path` is not analysed, or None when it is small enough."""
    size = path.stat().st_size
    if size <= ANALYSED_MAX_BYTES:
        return None
    return (f"{path.name} is {size / 2**20:.1f} MiB, above the {ANALYSED_MAX_BYTES // 2**20} MiB analysis limit: "
            "not analysed")


def file_sha256(path: Path) -> str:
    """The file's sha256, read again only when the file changed: status hashes every applied file for drift and a
    run hashes each file it runs, so a 1000-step apply would read each file twice.

    The file is opened each time (on NFS that revalidates its attributes) and its identity taken from the open file.
    A digest is remembered only when the file kept its identity while being read and was last changed more than
    `RACY_NS` before (git's "racy clean" rule): an edit of the same size within one tick of a coarse file
    clock would leave the identity as it was."""
    with open(path, "rb") as file:
        before = _identity(os.fstat(file.fileno()), path)
        known = _DIGESTS.get(before)
        if known is not None:
            return known
        digest = hashlib.file_digest(file, "sha256").hexdigest()  # in chunks: memory does not grow with the file
        after = os.fstat(file.fileno())
    if _identity(after, path) == before and time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) > RACY_NS:
        _DIGESTS[before] = digest
    return digest


RACY_NS = 2 * 10**9  # a file changed this recently is hashed again next time
# Digests by what identifies a file's content without reading it; a rewrite changes its mtime or ctime.
_DIGESTS: dict[tuple, str] = {}


def _identity(st: os.stat_result, path: Path) -> tuple:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class MigrationSet:
    """A component's migrations folder, scanned: its migrations and the house-rule breaches."""

    folder: Path
    migrations: list[Migration] = field(default_factory=list)  # sorted by version
    problems: list[str] = field(default_factory=list)  # house-rule breaches, for status and pre-checks

    def by_version(self, version: int) -> Migration | None:
        return self._index()[0].get(version)

    def previous(self, version: int | None) -> int | None:
        """The version just below `version` among the files (None: nothing below)."""
        versions = self._index()[1]
        i = bisect.bisect_left(versions, version) if version is not None else 0
        return versions[i - 1] if i > 0 else None

    def _index(self) -> tuple[dict[int, Migration], list[int]]:
        # Looked up for every step golang-migrate reports; rebuilt only when the list was replaced or grew.
        cached = self.__dict__.get("_index_cache")
        if cached is None or cached[0] is not self.migrations or cached[1] != len(self.migrations):
            cached = (self.migrations, len(self.migrations), {m.version: m for m in self.migrations},
                      [m.version for m in self.migrations])
            self.__dict__["_index_cache"] = cached
        return cached[2], cached[3]

    def find(self, version_id: str) -> Migration | None:
        """Look up `YYYYMMDDHHMM_slug` (or a bare version) as the operator typed it."""
        head = version_id.split("_", 1)[0]
        if not re.fullmatch(r"[0-9]{1,19}", head):
            return None
        migration = self.by_version(int(head))
        if migration is None:
            return None
        if "_" in version_id and migration.id != version_id and f"{migration.version}_{migration.slug}" != version_id:
            return None
        return migration


# What an operator may type for a migration: the id as status prints it (the version as written in the file name,
# any width, then its title) or the bare version. Titles are what golang-migrate accepts in file names, less white
# space and the characters a shell or a terminal would act on.
OPERATOR_ID = re.compile(r"^([0-9]+)(?:_([^\s$`;|&<>()'\"\\*?!{}\[\]#~]+))?\Z")


def parse_id(version_id: str) -> tuple[int, str | None]:
    """Validate an operator-typed id (`<version>_<title>`, any width, or the bare version); (version, title)."""
    match = OPERATOR_ID.match(version_id)
    if not match or int(match.group(1)) > MAX_VERSION:
        raise UsageError(
            f"'{printable(version_id, 80)}' is not a migration id",
            hint="give the id as status prints it (e.g. 202611010900_create_accounts or 0001_init), or its version",
        )
    return int(match.group(1)), match.group(2)


def _numeric_order(name: str) -> tuple[int, str]:
    """Migration files by version as golang-migrate orders them (1_, 2_, 10_), then everything else."""
    match = GOLANG_MIGRATE_NAME.match(name)
    return (int(match.group(1)) if match else 2**64, name)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _regular_file(entry: os.DirEntry) -> None:
    """golang-migrate opens every name that looks like a migration: each must be a readable regular file."""
    try:
        if entry.is_file():  # follows links; the directory listing answers for a plain file without a stat
            return
    except OSError:
        pass
    path = Path(entry.path)
    try:
        path.stat()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror} (a link that loops or leads nowhere?)",
                         hint="fix or remove it: golang-migrate would try to read it") from None
    raise UsageError(f"{path} is not a regular file (a directory?)",
                     hint="rename or remove it: its name makes golang-migrate take it for a migration")


def scan(folder: Path, root: Path | None = None) -> MigrationSet:
    """`root`: the project root; a folder or file that is a link leading outside it is refused."""
    if not folder.exists():
        raise UsageError(f"migrations folder {folder} does not exist", hint="check --component and the project root")
    if not folder.is_dir():
        raise UsageError(f"migrations folder {folder} is not a directory")
    if root is not None and not _inside(folder, root):
        raise UsageError(
            f"migrations folder {folder} leads outside the project ({folder.resolve()})",
            hint="keep migrations inside the repository so what is reviewed is what runs",
        )
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: _numeric_order(e.name))
    except OSError as exc:
        raise UsageError(f"cannot read migrations folder {folder}: {exc.strerror}") from None

    found: dict[int, dict[str, object]] = {}
    result = MigrationSet(folder=folder)
    for listed in entries:
        name = listed.name
        match = GOLANG_MIGRATE_NAME.match(name)
        if not match:
            if name.endswith(".sql"):
                result.problems.append(f"{name}: not a migration file name; golang-migrate ignores it")
            continue
        version_text, slug, direction, ext = match.groups()
        _regular_file(listed)
        if root is not None and listed.is_symlink() and not _inside(folder / name, root):
            raise UsageError(f"{folder / name} is a link leading outside the project")
        version = int(version_text)
        if version > MAX_VERSION:
            raise UsageError(f"{name}: version {version_text} is too large for golang-migrate")
        if ext != "sql":
            result.problems.append(f"{name}: extension .{ext} is not .sql, but golang-migrate will run it")
        entry = found.setdefault(version, {"slug": slug, "text": version_text})
        if direction in entry:
            # golang-migrate refuses to open the folder at all in this case.
            raise UsageError(
                f"duplicate {direction} migration for version {version_text} in {folder}",
                hint="give each migration its own version",
            )
        if entry["slug"] != slug:
            result.problems.append(f"version {version_text}: up and down titles differ ({entry['slug']} / {slug})")
        entry[direction] = folder / name

    for version in sorted(found):
        entry = found[version]
        migration = Migration(
            version=version,
            slug=str(entry["slug"]),
            version_text=str(entry["text"]),
            up=entry.get("up"),  # type: ignore[arg-type]
            down=entry.get("down"),  # type: ignore[arg-type]
        )
        if migration.up is None:
            result.problems.append(f"{migration.id}: has a down file but no up file")
        result.migrations.append(migration)
    return result
