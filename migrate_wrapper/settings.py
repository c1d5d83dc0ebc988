"""Settings for one invocation: the operator's env file, with the process environment winning.

The file is validated line by line with python-dotenv's own parser before pydantic-settings reads it, because
python-dotenv silently skips lines it cannot parse and a skipped DB_URL line would mean migrating the wrong database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from migrate_wrapper import components
from migrate_wrapper.components import Component
from migrate_wrapper.dburl import DatabaseUrl
from migrate_wrapper.errors import UsageError

ENV_FILE_ENCODING = "utf-8-sig"  # tolerate a BOM written by Windows editors


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file_encoding=ENV_FILE_ENCODING)

    db_url: SecretStr | None = None
    analytics_url: SecretStr | None = None
    migration_component: str | None = None
    migration_environment: Literal["dev", "staging", "production"] = "dev"
    migration_author: str | None = None
    migration_approved_by: str | None = None
    migration_window_seconds: int = Field(default=600, gt=0)
    # Guardrails (see runbooks/database-migrations.md for what each one protects against).
    migration_lock_timeout_ms: int = Field(default=5000, gt=0)
    migration_statement_timeout_ms: int | None = Field(default=None, gt=0)  # default: the window
    migration_lock_retries: int = Field(default=3, ge=1)  # tries in all, for a step that hit the lock timeout
    migration_lock_retry_wait_seconds: float = Field(default=2.0, ge=0)  # doubles after each try
    migration_long_transaction_seconds: float = Field(default=60.0, gt=0)
    migration_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    migration_window_grace_seconds: float = Field(default=5.0, ge=0)
    migration_exact_count_threshold: int = Field(default=100_000, ge=0)
    migration_progress_seconds: float = Field(default=10.0, gt=0)  # progress records while a step runs
    migration_scratch_url: SecretStr | None = None  # where rehearsals and schema builds create throwaway databases
    migrate_bin: str | None = None
    migrate_wrapper_root: Path | None = None  # where db/migrations lives; the scripts set it

    def url_for(self, component: Component) -> DatabaseUrl:
        secret = getattr(self, component.url_setting.lower(), None)
        if secret is None or not secret.get_secret_value().strip():
            raise UsageError(
                f"{component.url_setting} is not set (needed by component {component.name})",
                hint="set it in the --env file or the environment",
            )
        return DatabaseUrl.parse(secret.get_secret_value(), setting=component.url_setting)

    def scratch_url(self) -> str | None:
        value = self.migration_scratch_url.get_secret_value().strip() if self.migration_scratch_url else ""
        return value or None

    def project_root(self) -> Path:
        return components.project_root(self.migrate_wrapper_root)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file strictly: every line must parse and no key may be set twice."""
    import io

    from dotenv.parser import parse_stream  # python-dotenv comes with pydantic-settings

    if not path.exists():
        raise UsageError(f"env file {path} does not exist", hint="pass --env with the path of your migrate.env")
    if not path.is_file():
        raise UsageError(f"env file {path} is not a file")
    try:
        text = path.read_bytes().decode(ENV_FILE_ENCODING)
    except OSError as exc:
        raise UsageError(f"cannot read env file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"env file {path} is not UTF-8 text") from None
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise UsageError(f"{path}:{line}: cannot parse this line", hint="expected KEY=value")
        if binding.key is None:
            continue  # blank or comment
        if binding.value is None:
            raise UsageError(f"{path}:{line}: {binding.key} has no value", hint="expected KEY=value")
        if binding.key in first_line:
            raise UsageError(
                f"{path}:{line}: {binding.key} is set again (first on line {first_line[binding.key]})",
                hint="keep one",
            )
        first_line[binding.key] = line
        values[binding.key] = binding.value
    return values


# Variables that make lib/pq panic, or (PGHOSTADDR) point libpq somewhere other than the URL: the wrapper reaches
# databases only through the URLs, so neither its own connections nor golang-migrate's may see them.
LIBPQ_HAZARDS = ("PGSERVICE", "PGHOSTADDR", "PGSSLCRL")


def load(env_file: Path | None) -> Settings:
    """Build the settings; OTEL_* keys from the file are exported so the OpenTelemetry SDK reads them itself."""
    for key in LIBPQ_HAZARDS:
        os.environ.pop(key, None)
    file_values = read_env_file(env_file) if env_file is not None else {}
    for key, value in file_values.items():
        if key.upper().startswith("OTEL_") or key.upper() == "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS":
            os.environ.setdefault(key.upper(), value)
    try:
        # pydantic-settings' own precedence: the environment over the file.
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]).upper()
        raise UsageError(f"{key}: {error['msg']}") from None
