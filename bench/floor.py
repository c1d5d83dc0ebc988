"""`python -m bench.floor ENV_FILE`: the least a status in this design can cost, for benchmark 2's floor row.

It imports what status's path needs of the design card's libraries (typer, pydantic-settings, psycopg), declares a
settings model, reads DB_URL from the env file, opens one connection and reads the version, as status does first;
none of migrate-wrapper's own code runs."""

from __future__ import annotations

import sys

import psycopg
import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    db_url: SecretStr
    migration_environment: str = "dev"


def status(env_file: str) -> None:
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    with psycopg.connect(settings.db_url.get_secret_value(), connect_timeout=10) as conn:
        row = conn.execute("select version, dirty from public.schema_migrations").fetchone()
    typer.echo(f"version {row[0] if row else None}")


if __name__ == "__main__":
    import os

    try:
        typer.run(status)
    except SystemExit as exc:
        sys.stdout.flush()
        os._exit(exc.code or 0)  # as migrate-wrapper leaves: without the interpreter's teardown