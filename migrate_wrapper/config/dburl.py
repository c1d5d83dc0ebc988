"""Database URLs: parse once, validate, mask for display, and derive what golang-migrate and psycopg each need.

The password never leaves this object except through `migrate_env()` (golang-migrate's environment, never its command
line) and `psycopg_kwargs()`, which are called only at the edge where a connection is made; everything printable goes
through `masked()` or `mask_text()`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from migrate_wrapper.errors import UsageError, printable

SCHEMES = ("postgres", "postgresql")
LIB_PQ_SSLMODES = ("disable", "require", "verify-ca", "verify-full")  # lib/pq rejects allow and prefer
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USERINFO = re.compile(r"(\w+://[^:/@\s]*):[^@\s]*@")

# Parameters libpq understands itself; golang-migrate's x-* parameters are its own and go nowhere else; any other
# parameter lib/pq sends to the server as a run-time setting, so psycopg gets it as `options=-c name=value`.
_LIBPQ_PARAMS = frozenset(
    {
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "connect_timeout", "client_encoding",
        "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl",
        "sslpassword", "target_session_attrs", "krbsrvname", "gssencmode",
    }
)
_LIBPQ_ONLY_IN_LIBPQ = frozenset({"binary_parameters", "disable_prepared_binary_result", "sslinline", "sslsni"})
_SECRET_PARAMS = frozenset({"password", "sslpassword"})

# Every secret seen in a parsed URL this process: the CLI edge masks them in any message, even an unexpected one.
KNOWN_SECRETS: set[str] = set()

# Variables that make lib/pq panic, or (PGHOSTADDR) point libpq somewhere other than the URL: the wrapper reaches
# databases only through the URLs, so neither its own connections nor golang-migrate's may see them.
LIBPQ_HAZARDS = ("PGSERVICE", "PGHOSTADDR", "PGSSLCRL")


@dataclass(frozen=True)
class DatabaseUrl:
    """A component's database URL, parsed and validated; its secrets never leave it unmasked."""

    setting: str  # which setting it came from, for messages
    scheme: str
    user: str
    host: str
    port: int | None
    database: str
    params: tuple[tuple[str, str], ...]
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, raw: str, *, setting: str) -> DatabaseUrl:
        raw = raw.strip()
        if any(not c.isprintable() for c in raw):
            raise UsageError(f"{setting} contains a control character", hint="write the URL on one line, in plain text")
        if "://" not in raw:
            raise UsageError(
                f"{setting} is not a URL (no scheme)",
                hint="write it as postgres://user:password@host:5432/dbname?sslmode=require",
            )
        scheme = raw.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise UsageError(f"{setting} has scheme '{scheme}://'; use postgres:// or postgresql://")
        if "#" in raw:
            raise UsageError(f"{setting} contains '#'", hint="percent-encode it in the password (# is %23)")
        if _BAD_ESCAPE.search(raw):
            raise UsageError(f"{setting} has a '%' that is not a %XX escape", hint="percent-encode '%' as %25")
        parts = urlsplit(raw)
        try:
            port = parts.port
        except ValueError:
            raise UsageError(
                f"{setting} has an invalid host or port",
                hint="percent-encode special characters in the password (@ %40, / %2F, : %3A)",
            ) from None
        database = unquote(parts.path.lstrip("/"))
        params = tuple(parse_qsl(parts.query, keep_blank_values=True))
        if not database and not dict(params).get("dbname"):
            raise UsageError(f"{setting} names no database", hint="add /dbname after the host")
        sslmode = dict(params).get("sslmode")
        if sslmode is not None and sslmode not in LIB_PQ_SSLMODES:
            raise UsageError(
                f"{setting} has sslmode={sslmode}, which golang-migrate's driver (lib/pq) does not support",
                hint=f"use one of: {', '.join(LIB_PQ_SSLMODES)}",
            )
        if "/" in database:
            raise UsageError(
                f"{setting} has an invalid path",
                hint="percent-encode special characters in the password (/ is %2F)",
            )
        _check_params(setting, dict(params))
        url = cls(
            setting=setting,
            scheme=scheme,
            user=unquote(parts.username or ""),
            host=parts.hostname or "",
            port=port,
            database=database,
            params=params,
            password=unquote(parts.password or ""),
        )
        KNOWN_SECRETS.update(url.secrets())
        return url

    # -- display ------------------------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        host = self.host or dict(self.params).get("host", "localhost")
        host = f"[{host}]" if ":" in host else host  # an IPv6 address, as a URL writes it
        return f"{host}:{self.port or 5432}/{self.database}"

    def masked(self) -> str:
        user = quote(self.user, safe="") if self.user else ""
        auth = f"{user}:***@" if self.password or dict(self.params).get("password") else (f"{user}@" if user else "")
        return f"{self.scheme}://{auth}{self.where}"

    def secrets(self) -> list[str]:
        return list(self._secrets)

    @functools.cached_property
    def _secrets(self) -> tuple[str, ...]:  # the URL is frozen; mask_text runs on every line golang-migrate prints
        found = [self.password, quote(self.password, safe="")]
        found += [v for k, v in self.params if k in _SECRET_PARAMS]
        return tuple(s for s in found if s)

    def mask_text(self, text: str) -> str:
        return mask_text(text, self._secrets)

    # -- for connections ----------------------------------------------------------------------------------------
    def param(self, name: str) -> str | None:
        return dict(self.params).get(name)

    def for_migrate(self, extra: dict[str, str] | None = None) -> str:
        """The URL golang-migrate gets on its command line: the operator's own, plus defaults the operator did not
        set — and no secret, since every local user can read a command line. The password goes to golang-migrate
        through its environment (`migrate_env`); lib/pq cannot use `sslpassword`, and would send it to the server as
        a setting, so it is left out."""
        params = {k: v for k, v in self.params if k not in _SECRET_PARAMS}
        for key, value in (extra or {}).items():
            params.setdefault(key, value)
        userinfo = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.scheme}://{userinfo}{host}{port}/{quote(self.database, safe='')}{query}"

    def with_defaults(self, params: dict[str, str]) -> DatabaseUrl:
        """This URL with `params` added where it does not set them itself (checked again as a whole)."""
        missing = tuple((k, v) for k, v in params.items() if self.param(k) is None)
        merged = replace(self, params=self.params + missing) if missing else self
        check_migrations_table(self.setting, dict(merged.params))
        return merged

    def migrate_env(self) -> dict[str, str]:
        """What golang-migrate's environment needs for this URL: lib/pq reads the password from PGPASSWORD."""
        password = self.password or dict(self.params).get("password", "")
        return {"PGPASSWORD": password} if password else {}

    def psycopg_kwargs(self, *, connect_timeout: float) -> dict[str, str]:
        """Keyword arguments for psycopg.connect that reach the same server, database and settings as lib/pq."""
        # lib/pq defaults to PGSSLMODE, else "require"; psycopg gets the same so both clients reach the server alike.
        kwargs: dict[str, str] = {"sslmode": os.environ.get("PGSSLMODE") or "require"}
        server_settings: list[str] = []
        for key, value in self.params:
            if key.startswith("x-") or key in _LIBPQ_ONLY_IN_LIBPQ:
                continue
            if key in _LIBPQ_PARAMS:
                kwargs[key] = value
            else:
                server_settings.append(f"-c {key}={value}")
        if server_settings:
            kwargs["options"] = " ".join(filter(None, [kwargs.get("options", ""), *server_settings]))
        if self.host:
            kwargs["host"] = self.host
        if self.port:
            kwargs["port"] = str(self.port)
        if self.user:
            kwargs["user"] = self.user
        if self.password:
            kwargs["password"] = self.password
        if self.database:
            kwargs["dbname"] = self.database
        kwargs["connect_timeout"] = str(max(1, round(connect_timeout)))
        return kwargs


_GO_BOOLS = {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}  # strconv.ParseBool
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")
_UNIT_MS = {None: 1.0, "us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
# Server timeouts a URL may set (directly, or as `options=-c name=value`), with the least value that leaves
# golang-migrate's own statements and the wrapper's checks room to run (0 means none, as in PostgreSQL).
_TIMEOUTS_MIN_MS = {"lock_timeout": 1, "statement_timeout": 1000, "idle_in_transaction_session_timeout": 1000,
                    "idle_session_timeout": 1000, "client_connection_check_interval": 1}
PG_MAX_MS = 2**31 - 1  # the largest lock_timeout / statement_timeout PostgreSQL takes (int4 milliseconds)
_GO_MAX_MS = (2**63 - 1) // 1_000_000  # x-statement-timeout becomes a Go time.Duration in nanoseconds


def _check_params(setting: str, params: dict[str, str]) -> None:
    """Every URL parameter the wrapper or golang-migrate's driver interprets, checked before anything connects."""
    def bad(name: str, why: str, hint: str | None = None) -> UsageError:
        return UsageError(f"{setting}: {name} {why}", hint=hint)

    for name in ("x-migrations-table-quoted", "x-multi-statement"):
        if name in params and params[name] not in _GO_BOOLS:
            raise bad(f"{name}={printable(params[name], 60)}", "is not a boolean golang-migrate reads",
                      "use true or false")
    for name, low, high in (("x-statement-timeout", 0, _GO_MAX_MS), ("x-multi-statement-max-size", 1, 2**31 - 1),
                            ("connect_timeout", 0, 2**31 - 1)):
        if name in params and not (re.fullmatch(r"[0-9]{1,19}", params[name]) and low <= int(params[name]) <= high):
            raise bad(f"{name}={printable(params[name], 60)}", f"is not a whole number from {low} to {high}")
    if "x-migrations-table" in params:  # else the component may still name it: see check_migrations_table
        check_migrations_table(setting, params)
    settings = {k: v for k, v in params.items() if k in _TIMEOUTS_MIN_MS}
    settings.update(_options_settings(params.get("options", "")))
    for name, value in settings.items():
        if name not in _TIMEOUTS_MIN_MS:
            continue
        m = _DURATION.match(value)
        ms = float(m[1]) * _UNIT_MS[m[2]] if m else None
        if ms is None or ms > PG_MAX_MS or (0 < ms < _TIMEOUTS_MIN_MS[name]):
            raise bad(f"{name}={printable(value, 60)}", f"must be 0 (none) or {_TIMEOUTS_MIN_MS[name]} ms to "
                      f"{PG_MAX_MS} ms (5000, 5s, 1min)", "golang-migrate's own statements and the wrapper's checks "
                      "run under it; MIGRATION_STATEMENT_TIMEOUT_MS and MIGRATION_LOCK_TIMEOUT_MS bound a migration")


def check_migrations_table(setting: str, params: dict[str, str]) -> None:
    """With x-migrations-table-quoted, golang-migrate takes the table as "schema"."table" or "table" (and panics
    on anything else)."""
    if (params.get("x-migrations-table-quoted") or "false").lower() not in ("1", "t", "true"):
        return
    table = params.get("x-migrations-table", "")
    names = re.findall(r'"(.*?)"', table)
    if not (table.startswith('"') and table.endswith('"') and len(table) > 1) or not 1 <= len(names) <= 2 \
            or not all(names):
        raise UsageError(f"{setting}: x-migrations-table={printable(table, 60)} is not a quoted name with "
                         "x-migrations-table-quoted", hint='write it as "schema"."table" or "table"')


def _options_settings(options: str) -> dict[str, str]:
    """The `-c name=value` (or `--name=value`) settings in libpq's options string."""
    found: dict[str, str] = {}
    tokens = options.split()
    for i, token in enumerate(tokens):
        pair = None
        if token == "-c" and i + 1 < len(tokens):
            pair = tokens[i + 1]
        elif token.startswith("-c") and len(token) > 2:
            pair = token[2:]
        elif token.startswith("--") and "=" in token:
            pair = token[2:]
        if pair and "=" in pair:
            name, value = pair.split("=", 1)
            found[name.replace("-", "_").lower()] = value
    return found


@functools.lru_cache(maxsize=16)
def _longest_first(secrets: tuple[str, ...], known: frozenset[str]) -> tuple[str, ...]:
    """The secrets worth masking, longest first (one that contains another goes first)."""
    return tuple(s for s in sorted(set(secrets) | known, key=len, reverse=True) if len(s) >= MIN_MASKED_LENGTH)


MIN_MASKED_LENGTH = 4  # shorter secrets would blank out ordinary words; URL userinfo is still masked below


def mask_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Hide every known secret and any user:password@ in URLs inside free text (e.g. golang-migrate's errors)."""
    for secret in _longest_first(tuple(secrets), frozenset(KNOWN_SECRETS)):
        if secret in text:
            text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1:***@", text) if "://" in text else text  # runs on every line golang-migrate prints
