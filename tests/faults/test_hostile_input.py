"""Hostile and malformed input: one clear line, a documented exit code, no traceback, the database untouched."""

import stat
from dataclasses import dataclass
from typing import Callable

import pytest

from tests.conftest import ROOT, error_lines, invoke

pytestmark = [pytest.mark.integration]


@dataclass
class Case:
    id: str
    prepare: Callable  # (ctx) -> list of CLI args
    code: int
    message: str


class Ctx:
    def __init__(self, dbs, project, tmp_path):
        self.dbs, self.project, self.tmp = dbs, project, tmp_path
        self.root = ROOT
        self.env: dict[str, str] = {}

    def env_file(self, body: bytes) -> str:
        path = self.tmp / "hostile.env"
        path.write_bytes(body)
        return str(path)

    def good_lines(self) -> bytes:
        return self.dbs.env_file.read_bytes()

    def files(self, files: dict[str, bytes]) -> None:
        self.root = self.project({})
        folder = self.root / "db/migrations/operational"
        for name, body in files.items():
            (folder / name).write_bytes(body)


def apply(env_file):
    return ["apply", "-c", "operational", "--env", env_file, "--yes"]


def with_url(ctx, url: str, extra: bytes = b""):
    return apply(ctx.env_file(b"DB_URL=" + url.encode() + b"\n" + extra))


def base_url(ctx) -> str:
    return ctx.dbs.url("operational")


def swap(ctx, old: str, new: str) -> str:
    return base_url(ctx).replace(old, new)


GOOD_UP = b"create table t(id int);\n"
GOOD_DOWN = b"drop table t;\n"


def migrations(ctx, up: bytes, down: bytes = GOOD_DOWN, name="202601010000_t"):
    ctx.files({f"{name}.up.sql": up, f"{name}.down.sql": down})
    return apply(str(ctx.dbs.env_file))


def fake_binary(ctx, script: str):
    path = ctx.tmp / "fake-migrate"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    ctx.env["MIGRATE_BIN"] = str(path)
    return apply(str(ctx.dbs.env_file))


def symlinked_folder(ctx):
    outside = ctx.tmp / "outside"
    outside.mkdir()
    (outside / "202601010000_t.up.sql").write_bytes(GOOD_UP)
    (outside / "202601010000_t.down.sql").write_bytes(GOOD_DOWN)
    ctx.root = ctx.project({})
    folder = ctx.root / "db/migrations/operational"
    folder.rmdir()
    folder.symlink_to(outside)
    return apply(str(ctx.dbs.env_file))


def symlinked_file(ctx):
    ctx.root = ctx.project({})
    (ctx.tmp / "evil.sql").write_bytes(GOOD_UP)
    (ctx.root / "db/migrations/operational/202601010000_t.up.sql").symlink_to(ctx.tmp / "evil.sql")
    (ctx.root / "db/migrations/operational/202601010000_t.down.sql").write_bytes(GOOD_DOWN)
    return apply(str(ctx.dbs.env_file))


def named_like_a_migration(ctx, make):
    ctx.root = ctx.project({})
    folder = ctx.root / "db/migrations/operational"
    (folder / "202601010000_t.up.sql").write_bytes(GOOD_UP)
    (folder / "202601010000_t.down.sql").write_bytes(GOOD_DOWN)
    make(folder)
    return apply(str(ctx.dbs.env_file))


def link_loop(folder):
    (folder / "202601010100_a.up.sql").symlink_to(folder / "202601010100_b.up.sql")
    (folder / "202601010100_b.up.sql").symlink_to(folder / "202601010100_a.up.sql")


def setting(ctx, line: bytes):
    return apply(ctx.env_file(ctx.good_lines() + line + b"\n"))


def up_only_applied(ctx):
    ctx.files({"202601010000_a.up.sql": GOOD_UP})  # golang-migrate applies it; no rollback may cross it
    assert invoke("apply", "-c", "operational", "--env", str(ctx.dbs.env_file), "--yes", root=ctx.root).returncode == 0
    return rollback(ctx, "202601010000_a")


def applied_then(ctx, args):
    assert invoke("apply", "-c", "operational", "--env", str(ctx.dbs.env_file), "--yes").returncode == 0
    return args


def rollback(ctx, version):
    return ["rollback", "-c", "operational", "--env", str(ctx.dbs.env_file), "--version", version, "--yes"]


CASES = [
    # env files
    Case("env: line without =", lambda c: apply(c.env_file(c.good_lines() + b"just words\n")), 2, "cannot parse this line"),
    Case("env: duplicate key", lambda c: apply(c.env_file(c.good_lines() + b"DB_URL=postgres://x@h/d\n")), 2, "DB_URL is set again"),
    Case("env: not UTF-8", lambda c: apply(c.env_file(b"DB_URL=\xff\xfe\n")), 2, "is not UTF-8 text"),
    Case("env: a directory", lambda c: apply(str(c.tmp)), 2, "is not a file"),
    Case("env: missing file", lambda c: apply(str(c.tmp / "nope.env")), 2, "does not exist"),
    Case("env: empty file", lambda c: apply(c.env_file(b"")), 2, "DB_URL is not set"),
    Case("env: key without value", lambda c: apply(c.env_file(b"DB_URL\n")), 2, "DB_URL has no value"),
    Case("env: bad environment name", lambda c: apply(c.env_file(c.good_lines() + b"MIGRATION_ENVIRONMENT=prod\n")), 2, "MIGRATION_ENVIRONMENT"),
    Case("env: window not a number", lambda c: apply(c.env_file(c.good_lines() + b"MIGRATION_WINDOW_SECONDS=ten\n")), 2, "MIGRATION_WINDOW_SECONDS"),
    Case("env: unterminated quote", lambda c: apply(c.env_file(b'DB_URL="postgres://u@h/d\n')), 2, "cannot parse this line"),
    Case("env: key again in another spelling", lambda c: setting(c, b"db_url=postgres://x@127.0.0.1/wrongdb"), 2, "db_url is set again (first on line 1 as DB_URL)"),
    Case("env: environment again in another spelling", lambda c: apply(c.env_file(b"DB_URL=" + base_url(c).encode() + b"\nMIGRATION_ENVIRONMENT=production\nmigration_environment=dev\n")), 2, "migration_environment is set again (first on line 2 as MIGRATION_ENVIRONMENT)"),
    Case("env: a NUL byte in a value", lambda c: setting(c, b"MIGRATION_ENVIRONMENT=pro\x00d"), 2, "MIGRATION_ENVIRONMENT"),
    Case("env: window beyond its range", lambda c: setting(c, b"MIGRATION_WINDOW_SECONDS=9999999999"), 2, "MIGRATION_WINDOW_SECONDS: Input should be less than or equal to 2147483"),
    Case("env: connect timeout inf", lambda c: setting(c, b"MIGRATION_CONNECT_TIMEOUT_SECONDS=inf"), 2, "MIGRATION_CONNECT_TIMEOUT_SECONDS: Input should be a finite number"),
    Case("env: grace nan", lambda c: setting(c, b"MIGRATION_WINDOW_GRACE_SECONDS=nan"), 2, "MIGRATION_WINDOW_GRACE_SECONDS"),
    Case("env: lock timeout beyond PostgreSQL's", lambda c: setting(c, b"MIGRATION_LOCK_TIMEOUT_MS=99999999999"), 2, "MIGRATION_LOCK_TIMEOUT_MS: Input should be less than or equal to 2147483647"),
    Case("env: statement timeout beyond PostgreSQL's", lambda c: setting(c, b"MIGRATION_STATEMENT_TIMEOUT_MS=3000000000"), 2, "MIGRATION_STATEMENT_TIMEOUT_MS"),
    Case("env: retries zero", lambda c: setting(c, b"MIGRATION_LOCK_RETRIES=0"), 2, "MIGRATION_LOCK_RETRIES"),
    Case("env: progress negative", lambda c: setting(c, b"MIGRATION_PROGRESS_SECONDS=-1"), 2, "MIGRATION_PROGRESS_SECONDS"),
    # URLs
    Case("url: search_path with no schema that exists", lambda c: with_url(c, base_url(c) + "&search_path=nosuch"), 2, "no schema on its search_path (nosuch) exists"),
    Case("url: options with statement_timeout=1", lambda c: with_url(c, base_url(c) + "&options=-c%20statement_timeout%3D1"), 2, "statement_timeout=1 must be 0 (none) or 1000 ms"),
    Case("url: statement_timeout=1ms", lambda c: with_url(c, base_url(c) + "&statement_timeout=1ms"), 2, "statement_timeout=1ms must be"),
    Case("url: lock_timeout beyond PostgreSQL's", lambda c: with_url(c, base_url(c) + "&lock_timeout=99999999999"), 2, "lock_timeout=99999999999 must be"),
    Case("url: malformed quoted migrations table", lambda c: with_url(c, base_url(c) + "&x-migrations-table=%22a.b&x-migrations-table-quoted=1"), 2, "is not a quoted name with x-migrations-table-quoted"),
    Case("url: quoted flag that is not a boolean", lambda c: with_url(c, base_url(c) + "&x-migrations-table-quoted=yes"), 2, "x-migrations-table-quoted=yes is not a boolean"),
    Case("url: x-statement-timeout not a number", lambda c: with_url(c, base_url(c) + "&x-statement-timeout=soon"), 2, "x-statement-timeout=soon is not a whole number"),
    Case("url: x-statement-timeout beyond Go's durations", lambda c: with_url(c, base_url(c) + "&x-statement-timeout=99999999999999"), 2, "x-statement-timeout=99999999999999"),
    Case("url: connect_timeout not a number", lambda c: with_url(c, base_url(c) + "&connect_timeout=-5"), 2, "connect_timeout=-5 is not a whole number"),
    Case("url: a NUL byte", lambda c: apply(c.env_file(b"DB_URL=" + base_url(c).encode().replace(b"?", b"\x00?") + b"\n")), 2, "DB_URL contains a control character"),
    Case("url: no scheme", lambda c: with_url(c, "127.0.0.1:5432/db"), 2, "is not a URL (no scheme)"),
    Case("url: mysql scheme", lambda c: with_url(c, "mysql://u:p@h/d"), 2, "scheme 'mysql://'"),
    Case("url: raw # in password", lambda c: with_url(c, "postgres://u:pa#ss@127.0.0.1/d"), 2, "contains '#'"),
    Case("url: raw / in password", lambda c: with_url(c, "postgres://u:pa/ss@127.0.0.1/d"), 2, "DB_URL has an invalid"),
    Case("url: stray %", lambda c: with_url(c, "postgres://u:pa%zz@127.0.0.1/d"), 2, "is not a %XX escape"),
    Case("url: no database", lambda c: with_url(c, "postgres://u:p@127.0.0.1:5432"), 2, "names no database"),
    Case("url: bad port", lambda c: with_url(c, "postgres://u:p@127.0.0.1:99999/d"), 2, "invalid host or port"),
    Case("url: sslmode=prefer", lambda c: with_url(c, swap(c, "sslmode=disable", "sslmode=prefer")), 2, "sslmode=prefer"),
    Case("url: sslmode=allow", lambda c: with_url(c, swap(c, "sslmode=disable", "sslmode=allow")), 2, "sslmode=allow"),
    Case("url: sslmode=require on a server without TLS", lambda c: with_url(c, swap(c, "sslmode=disable", "sslmode=require")), 3, "pre-check failed: connectivity"),
    Case("url: sslmode=verify-full on a server without TLS", lambda c: with_url(c, swap(c, "sslmode=disable", "sslmode=verify-full")), 3, "pre-check failed: connectivity"),
    Case("url: wrong password", lambda c: with_url(c, c.dbs.server.url(c.dbs.operational, user="canary", password="Canary-Pw-bad")), 3, "pre-check failed: connectivity"),
    Case("url: unknown database", lambda c: with_url(c, swap(c, c.dbs.operational, "no_such_db")), 3, "no_such_db"),
    # versions
    Case("version: shell metacharacters", lambda c: rollback(c, "$(rm -rf /)"), 2, "is not a migration id"),
    Case("version: backticks and semicolon", lambda c: rollback(c, "`id`;202611010900_x"), 2, "is not a migration id"),
    Case("version: wrong slug", lambda c: applied_then(c, rollback(c, "202611010900_create_acount")), 2, "is 202611010900_create_accounts, not 202611010900_create_acount"),
    Case("version: not applied", lambda c: rollback(c, "202611050900_add_orders_total_cents"), 2, "is not applied"),
    Case("version: newline inside", lambda c: rollback(c, "202611010900_a\nb"), 2, "is not a migration id"),
    # migration folders and files
    Case("folder: missing", lambda c: (setattr(c, "root", c.tmp), apply(str(c.dbs.env_file)))[1], 2, "does not exist"),
    Case("folder: empty", lambda c: (setattr(c, "root", c.project({})), apply(str(c.dbs.env_file)))[1], 3, "no migration files in"),
    Case("folder: symlink outside the repository", symlinked_folder, 2, "leads outside the project"),
    Case("file: symlink outside the repository", symlinked_file, 2, "is a link leading outside the project"),
    Case("file: byte-order mark", lambda c: migrations(c, b"\xef\xbb\xbf" + GOOD_UP), 3, "byte-order mark"),
    Case("file: not UTF-8", lambda c: migrations(c, b"create table t(n text default '\xe9');\n"), 3, "is not UTF-8"),
    Case("file: a directory named like a migration", lambda c: named_like_a_migration(c, lambda f: (f / "202601010100_x.up.sql").mkdir()), 2, "202601010100_x.up.sql is not a regular file"),
    Case("file: a symlink loop", lambda c: named_like_a_migration(c, link_loop), 2, "a link that loops or leads nowhere"),
    Case("file: a dangling link", lambda c: named_like_a_migration(c, lambda f: (f / "202601010100_x.up.sql").symlink_to(f / "gone.sql")), 2, "a link that loops or leads nowhere"),
    Case("file: duplicate version", lambda c: (c.files({"202601010000_a.up.sql": GOOD_UP, "202601010000_b.up.sql": GOOD_UP}), apply(str(c.dbs.env_file)))[1], 2, "duplicate up migration"),
    Case("file: rollback across an up-only migration", up_only_applied, 3, "202601010000_a has no down file"),
    Case("file: version too large", lambda c: (c.files({"99999999999999999999_a.up.sql": GOOD_UP}), apply(str(c.dbs.env_file)))[1], 2, "too large"),
    # components and binaries
    Case("component: unknown", lambda c: ["apply", "-c", "billing", "--env", str(c.dbs.env_file), "--yes"], 2, "unknown component"),
    Case("component: rollback of all", lambda c: ["rollback", "-c", "all", "--env", str(c.dbs.env_file), "--version", "202611010900_create_accounts", "--yes"], 2, "rollback takes one component"),
    Case("binary: not golang-migrate", lambda c: fake_binary(c, "echo hello\n"), 2, "is not golang-migrate"),
    Case("binary: no postgres driver", lambda c: fake_binary(c, 'if [ "$1" = -version ]; then echo 4.19.1 >&2; else printf "Source drivers: file\\nDatabase drivers: stub\\n" >&2; fi\n'), 2, "without the postgres driver"),
    Case("binary: a directory", lambda c: (c.env.update(MIGRATE_BIN=str(c.tmp)), apply(str(c.dbs.env_file)))[1], 2, "is not an executable file"),
    Case("option: --evidence without --dry-run", lambda c: apply(str(c.dbs.env_file)) + ["--evidence", str(c.tmp / "e.md")], 2, "--evidence, --rehearse and --scratch-url go with --dry-run"),
]


@pytest.mark.faults(scenario="hostile input", expected="one line, documented code, db untouched")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(migrate_bin, dbs, project, tmp_path, fault, case):
    ctx = Ctx(dbs, project, tmp_path)
    args = case.prepare(ctx)
    before = dbs.server.dump_schema(dbs.operational)
    result = invoke(*args, root=ctx.root, env=ctx.env)
    errors = error_lines(result)
    fault.observed(f"exit {result.returncode}: {errors[-1] if errors else result.stderr[-100:]}")
    assert result.returncode == case.code, result.output
    assert len(errors) == 1, result.stderr
    assert case.message in errors[0], errors[0]
    assert dbs.server.dump_schema(dbs.operational) == before


@pytest.mark.faults(scenario="CRLF, empty and huge migration files", expected="they apply")
def test_awkward_but_valid_files_apply(migrate_bin, dbs, project, fault):
    huge = b"create table big(id int, v text);\n" + b"".join(
        b"insert into big values (%d, '%s');\r\n" % (i, b"x" * 200) for i in range(20000))
    root = project({})
    folder = root / "db/migrations/operational"
    (folder / "202601010000_crlf.up.sql").write_bytes(b"create table crlf(id int);\r\ncomment on table crlf is 'x';\r\n")
    (folder / "202601010000_crlf.down.sql").write_bytes(b"drop table crlf;\r\n")
    (folder / "202601010100_empty.up.sql").write_bytes(b"")
    (folder / "202601010100_empty.down.sql").write_bytes(b"")
    (folder / "202601010200_huge.up.sql").write_bytes(huge)
    (folder / "202601010200_huge.down.sql").write_bytes(b"drop table big;\n")
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root)
    fault.observed(f"exit {result.returncode}; huge file {len(huge) // 1024} KiB")
    assert result.returncode == 0, result.output
    assert dbs.server.psql(dbs.operational, "select count(*) from big") == "20000"
    assert "202601010100_empty.up.sql is empty" in result.stderr


@pytest.mark.faults(scenario="PG* variables that crash lib/pq", expected="ignored; apply works")
def test_libpq_hazard_variables_are_ignored(migrate_bin, dbs, fault):
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes",
                     env={"PGSERVICE": "nonexistent", "PGHOSTADDR": "10.255.255.1", "PGSSLCRL": "/nonexistent"})
    fault.observed(f"exit {result.returncode}")
    assert result.returncode == 0, result.output
    assert "panic" not in result.output
