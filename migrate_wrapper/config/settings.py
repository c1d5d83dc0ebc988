"""Settings for one invocation: the operator's env file, with the process environment winning.

The file is validated line by line with python-dotenv's own parser before pydantic-settings reads it, because
python-dotenv silently skips lines it cannot parse and a skipped DB_URL line would mean migrating the wrong database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from migrate_wrapper.config import components
from migrate_wrapper.config.components import Component
from migrate_wrapper.config.dburl import LIBPQ_HAZARDS, PG_MAX_MS, DatabaseUrl
from migrate_wrapper.errors import UsageError, printable

ENV_FILE_ENCODING = "utf-8-sig"  # tolerate a BOM written by Windows editors


MAX_WINDOW_SECONDS = PG_MAX_MS // 1000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file_encoding=ENV_FILE_ENCODING,
                                      allow_inf_nan=False)
    _overridden: tuple[str, ...] = PrivateAttr(default=())  # watched keys whose file value the environment overrode
    _urls: dict[str, str] = PrivateAttr(default_factory=dict)  # every *_URL by upper-case name: environment over file

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # load() passes the --env file's values as init arguments: the environment must still win over them.
        return env_settings, init_settings

    @property
    def overridden(self) -> tuple[str, ...]:
        return self._overridden

    migration_component: str | None = None
    migration_environment: Literal["dev", "staging", "production"] = "dev"
    migration_author: str | None = None
    migration_approved_by: str | None = None
    # Every number has a range (README, Configuration): PostgreSQL's timeouts are int4 milliseconds, and the window
    # becomes golang-migrate's statement timeout in milliseconds.
    migration_window_seconds: int = Field(default=600, gt=0, le=MAX_WINDOW_SECONDS)
    # Guardrails (see runbooks/database-migrations.md for what each one protects against).
    migration_lock_timeout_ms: int = Field(default=5000, gt=0, le=PG_MAX_MS)
    migration_statement_timeout_ms: int | None = Field(default=None, gt=0, le=PG_MAX_MS)  # default: the window
    migration_lock_retries: int = Field(default=3, ge=1, le=100)  # tries in all, for a step that hit the lock timeout
    migration_lock_retry_wait_seconds: float = Field(default=2.0, ge=0, le=3600)  # doubles after each try
    migration_long_transaction_seconds: float = Field(default=60.0, gt=0, le=MAX_WINDOW_SECONDS)
    migration_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    migration_window_grace_seconds: float = Field(default=5.0, ge=0, le=3600)
    migration_exact_count_threshold: int = Field(default=100_000, ge=0, le=2**62)
    migration_progress_seconds: float = Field(default=10.0, gt=0, le=3600)  # progress records while a step runs
    migration_scratch_url: SecretStr | None = None  # where rehearsals and schema builds create throwaway databases
    migrate_bin: str | None = None
    migrate_wrapper_root: Path | None = None  # the project root (migrate-wrapper.toml); the scripts set it

    @field_validator("migrate_wrapper_root", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def url_for(self, component: Component) -> DatabaseUrl:
        """The component's URL (its setting is named in the project file), with what the component itself says
        golang-migrate's URL needs (its migrations table) where the URL does not say it."""
        spellings = [name for name in os.environ if name.upper() == component.url_setting]
        if len(spellings) > 1:  # which one would win is arbitrary
            raise UsageError(f"{' and '.join(sorted(spellings))} are both set in the environment",
                             hint="keep one spelling")
        value = self._urls.get(component.url_setting, "")
        if not value.strip():
            raise UsageError(
                f"{component.url_setting} is not set (needed by component {component.name})",
                hint="set it in the --env file or the environment",
            )
        return DatabaseUrl.parse(value, setting=component.url_setting).with_defaults(component.url_params())

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
    first_line: dict[str, tuple[int, str]] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise UsageError(f"{path}:{line}: cannot parse this line", hint="expected KEY=value")
        if binding.key is None:
            continue  # blank or comment
        if binding.value is None:
            raise UsageError(f"{path}:{line}: {binding.key} has no value", hint="expected KEY=value")
        key = binding.key.upper()  # keys are case-insensitive: db_url after DB_URL would silently win
        if key in first_line:
            first, spelled = first_line[key]
            again = f" (first on line {first}" + (f" as {spelled})" if spelled != binding.key else ")")
            raise UsageError(f"{path}:{line}: {printable(binding.key)} is set again{again}", hint="keep one")
        first_line[key] = (line, binding.key)
        values[binding.key] = binding.value
    return values


# Settings that change what is touched or what is required: when the environment overrides the file's value for one,
# the plan says so (the environment still wins, as documented, but never silently).
WATCHED_OVERRIDES = ("MIGRATION_COMPONENT", "MIGRATION_ENVIRONMENT", "MIGRATION_APPROVED_BY")  # and every *_URL


def load(env_file: Path | None) -> Settings:
    """Build the settings; OTEL_* keys from the file are exported so the OpenTelemetry SDK reads them itself.

    The file's values are taken literally (no ${VAR} expansion: a password may contain one) and given to the model
    as its lowest-priority source, below the environment."""
    for key in LIBPQ_HAZARDS:
        os.environ.pop(key, None)
    file_values = read_env_file(env_file) if env_file is not None else {}
    for key, value in file_values.items():
        if key.upper().startswith("OTEL_") or key.upper() == "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS":
            os.environ.setdefault(key.upper(), value)
    environment = _environment_settings()
    try:
        settings = Settings(**{key.lower(): value for key, value in file_values.items()
                               if key.lower() in Settings.model_fields})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]).upper()
        raise UsageError(f"{key}: {printable(error['msg'])}") from None
    in_file = {key.upper(): value for key, value in file_values.items()}
    settings._urls = {key: value for key, value in {**in_file, **environment}.items() if key.endswith("_URL")}
    settings._overridden = tuple(key for key in sorted(set(environment) & set(in_file))
                                 if (key in WATCHED_OVERRIDES or key.endswith("_URL"))
                                 and environment[key] != in_file[key])
    return settings


def _environment_settings() -> dict[str, str]:
    """The process environment's values for the settings, by upper-case name; one set twice in two spellings (DB_URL
    and db_url) is refused, since which one pydantic-settings would take is arbitrary."""
    seen: dict[str, str] = {}
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        key = name.upper()
        if key.lower() not in Settings.model_fields and not key.endswith("_URL"):
            continue
        if key in seen and key.lower() not in Settings.model_fields:
            continue  # a *_URL in two spellings matters only to a component that uses it: url_for refuses it
        if key in seen:
            raise UsageError(f"{printable(name)} and {printable(seen[key])} are both set in the environment",
                             hint="keep one spelling")
        seen[key], found[key] = name, value
    return found
