"""The benchmarks' own PostgreSQL: scripts/dev/local-postgres.sh with its state in a temporary directory.

Its settings are the script's (fsync, full_page_writes and synchronous_commit off): the same server serves raw
golang-migrate and the wrapper alike, so the comparison is fair; absolute figures are lower than on a durable server.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "dev" / "local-postgres.sh"


@dataclass
class Cluster:
    state_dir: Path
    port: int = 0
    password: str = ""

    @property
    def _env(self) -> dict[str, str]:
        return {**os.environ, "LOCAL_PG_DIR": str(self.state_dir), "MIGRATE_ENV_FILE": str(self.state_dir / "migrate.env")}

    def start(self) -> None:
        done = subprocess.run([str(SCRIPT), "start"], env=self._env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"local PostgreSQL did not start: {done.stderr.strip() or done.stdout.strip()}")
        self.port = int((self.state_dir / "port").read_text().strip())
        self.password = (self.state_dir / "password").read_text().strip()

    def destroy(self) -> None:
        subprocess.run([str(SCRIPT), "destroy"], env=self._env, capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL)

    def url(self, database: str) -> str:
        return f"postgres://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def connect(self, database: str = "postgres"):  # noqa: ANN201
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", password=self.password,
                               dbname=database, autocommit=True, application_name="migrate-wrapper-bench")

    def execute(self, database: str, *statements: str) -> None:
        with self.connect(database) as conn:
            for statement in statements:
                conn.execute(statement)

    def query(self, database: str, sql: str, params=None) -> list[tuple]:  # noqa: ANN001
        with self.connect(database) as conn:
            return conn.execute(sql, params).fetchall()

    def recreate(self, database: str) -> None:
        with self.connect() as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')
            conn.execute(f'create database "{database}"')

    def drop(self, database: str) -> None:
        with self.connect() as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')

    def server_version(self) -> str:
        return self.query("postgres", "select current_setting('server_version')")[0][0]
