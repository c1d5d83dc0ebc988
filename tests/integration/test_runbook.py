"""Every fenced shell command of the runbook, run verbatim against a PostgreSQL the test session started.

Both the project's runbook and the operators' original (../shared/seed, when present) are exercised, so neither can
drift from what the tool does.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CANARY_FORMS, CANARY_PASSWORD, ROOT, run_cli

pytestmark = pytest.mark.integration

RUNBOOKS = [ROOT / "runbooks" / "database-migrations.md", ROOT.parent / "shared" / "seed" / "runbook-database-migrations.md"]
FENCE = re.compile(r"^\s*```(?:bash|sh|shell)\s*\n(.*?)^\s*```", re.S | re.M)
INLINE_MAKE = re.compile(r"`(make [a-z][a-z-]*)`")  # e.g. "Run `make db-migrate-status` to verify"


def commands(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    for block in FENCE.findall(text):
        found += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    # `make setup` is the prerequisite this very test session ran; re-running it through the linked checkout would
    # reinstall .venv with the temporary path baked into its scripts.
    found += [m for m in INLINE_MAKE.findall(text) if m not in found and m != "make setup"]
    return found


def newest_applied(dbs, component: str) -> str:
    result = run_cli("status", "-c", component, "--env", str(dbs.env_file), "--format", "json")
    return json.loads(result.stdout)["components"][0]["applied"][-1]["id"]


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.parent.name)
def test_runbook_commands_run_verbatim(migrate_bin, dbs, tmp_path, runbook):
    if not runbook.exists():
        if runbook.parent.name == "runbooks":
            pytest.fail(f"{runbook} is missing")
        pytest.skip(f"{runbook} not beside this checkout")
    cmds = commands(runbook)
    assert any("apply.sh --status" in c for c in cmds) and any("rollback.sh" in c for c in cmds)

    # The operator's checkout, with a migrate.env of their own: the project's files linked, the env file not.
    work = tmp_path / "work"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("migrate.env", ".local", ".git"):
            (work / entry.name).symlink_to(entry)
    # The scratch server the schema tools use comes from migrate.env too, as the runbook's prerequisites say.
    scratch_url = dbs.server.url("postgres", user="canary", password=CANARY_PASSWORD)
    (work / "migrate.env").write_text(dbs.env_file.read_text() + f"MIGRATION_SCRATCH_URL={scratch_url}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_URL", "ANALYTICS_URL", "MIGRATION_"))}
    env["MIGRATE_BIN"] = str(migrate_bin)

    ran = []
    for command in cmds:
        if "<YYYYMMDDHHMM_slug>" in command:
            component = "analytics" if "analytics" in command else "operational"
            command = command.replace("<YYYYMMDDHHMM_slug>", newest_applied(dbs, component))
        proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}\n{out}"
        assert "Traceback" not in out and not any(form in out for form in CANARY_FORMS)
        ran.append(command)

    # The runbook's effect: both components applied, then the newest of each rolled back.
    for component in ("operational", "analytics"):
        doc = json.loads(run_cli("status", "-c", component, "--env", str(dbs.env_file), "--format", "json").stdout)
        (state,) = doc["components"]
        assert len(state["pending"]) == 1 and not state["dirty"], state
    assert any(c.startswith("make db-migrate-status") for c in ran)
    if runbook.parent.name == "runbooks":
        for tool in ("validate-schema.sh", "smoke-test.sh", "measure-window.sh"):
            assert any(tool in c for c in ran), f"the runbook no longer runs {tool}"
        assert any("smoke-test.sh" in c for c in ran[[i for i, c in enumerate(ran) if "rollback.sh" in c][-1]:]), \
            "no smoke test after the rollback"
        assert (work / "window-operational.json").is_file()
