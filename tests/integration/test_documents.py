"""The JSON documents a script drives the wrapper from, checked against specs/schemas/ on real runs: status, and
the result of apply, rollback and repair (--format json), in success, no-op, failure and refusal."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.conftest import ROOT, migration_files as files, run_cli, version

pytestmark = pytest.mark.integration

SCHEMAS = ROOT / "specs" / "schemas"
OK = ("202601010000_create_t", "create table t (id int primary key);\n", "drop table t;\n")
BAD = ("202601010100_bad", "select * from nonexist;\n", "select 1;\n")


def document(result, schema: str) -> dict:
    """stdout is exactly one JSON document, valid against the schema."""
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, json.loads((SCHEMAS / schema).read_text()))
    return doc


def cli(dbs, root, *args, component="operational", env=None):
    return run_cli(*args, "-c", component, "--env", str(dbs.env_file), "--format", "json", root=root, env=env)


def test_status_document(migrate_bin, dbs):
    (fresh,) = document(cli(dbs, ROOT, "status"), "status.schema.json")["components"]
    assert fresh["state"] == "pending" and fresh["version"] is None
    both = document(cli(dbs, ROOT, "status", component="all"), "status.schema.json")["components"]
    assert [c["component"] for c in both] == ["operational", "analytics"]


def test_apply_result_ok_then_noop(migrate_bin, dbs, project):
    root = project({"operational": files(OK)})
    applied = cli(dbs, root, "apply", "--yes")
    assert applied.returncode == 0, applied.output
    (run,) = document(applied, "result.schema.json")["components"]
    assert (run["outcome"], run["exit_code"], run["from"], run["target"]) == ("ok", 0, None, OK[0])
    assert run["reached"] == {"version": OK[0], "dirty": False}
    assert [(s["id"], s["direction"], s["status"]) for s in run["steps"]] == [(OK[0], "up", "done")]
    assert {c["phase"] for c in run["checks"]} == {"pre", "post"}

    (again,) = document(cli(dbs, root, "apply", "--yes"), "result.schema.json")["components"]
    assert (again["outcome"], again["steps"], again["reached"]) == ("noop", [], {"version": OK[0], "dirty": False})


def test_apply_result_of_a_failed_step_says_what_the_database_shows(migrate_bin, dbs, project):
    root = project({"operational": files(OK, BAD)})
    failed = cli(dbs, root, "apply", "--yes")
    assert failed.returncode == 1
    (run,) = document(failed, "result.schema.json")["components"]
    assert (run["outcome"], run["exit_code"]) == ("failed", 1) and "nonexist" in run["error"]
    assert [(s["id"], s["status"]) for s in run["steps"]] == [(OK[0], "done"), (BAD[0], "unfinished")]
    shown = version(dbs).split()  # what golang-migrate's table holds now, read by the test itself
    assert run["reached"] == {"version": BAD[0] if shown[0] == BAD[0].split("_")[0] else OK[0],
                              "dirty": shown[-1] == "dirty"}


def test_rollback_and_refusals_give_a_document(migrate_bin, dbs, project):
    root = project({"operational": files(OK)})
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    rolled = cli(dbs, root, "rollback", "--version", OK[0], "--yes")
    assert rolled.returncode == 0, rolled.output
    (run,) = document(rolled, "result.schema.json")["components"]
    assert (run["command"], run["outcome"], run["reached"]) == ("rollback", "ok", {"version": None, "dirty": False})
    assert [(s["id"], s["direction"], s["status"]) for s in run["steps"]] == [(OK[0], "down", "done")]

    refused = cli(dbs, root, "apply")  # no --yes and no terminal: refused before anything changes
    assert refused.returncode == 2
    (run,) = document(refused, "result.schema.json")["components"]
    assert (run["outcome"], run["exit_code"], run["steps"]) == ("refused", 2, [])

    clean = cli(dbs, root, "repair", "--yes", env={"MIGRATION_SCRATCH_URL": dbs.server.url("postgres")})
    assert clean.returncode == 0, clean.output
    (run,) = document(clean, "result.schema.json")["components"]
    assert (clean.returncode, run["command"], run["outcome"]) == (0, "repair", "noop")

    unknown = run_cli("apply", "-c", "billing", "--env", str(dbs.env_file), "--format", "json", root=root)
    assert unknown.returncode == 2 and document(unknown, "result.schema.json") == {"components": []}


def test_apply_of_all_components_is_one_document(migrate_bin, dbs):
    result = cli(dbs, ROOT, "apply", "--yes", component="all")
    assert result.returncode == 0, result.output
    runs = document(result, "result.schema.json")["components"]
    assert [(r["component"], r["outcome"]) for r in runs] == [("operational", "ok"), ("analytics", "ok")]
    assert len({r["trace_id"] for r in runs}) == 2


def test_status_lists_when_and_by_whom_each_migration_was_applied(migrate_bin, dbs, project):
    root = project({"operational": files(OK)})
    assert run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root,
                   env={"MIGRATION_AUTHOR": "alice@example.com"}).returncode == 0
    (doc,) = document(cli(dbs, root, "status"), "status.schema.json")["components"]
    (applied,) = doc["applied"]
    assert applied["applied_by"] == "alice@example.com" and applied["duration_ms"] >= 0
    assert applied["applied_at"].endswith(" UTC")
    text = run_cli("status", "-c", "operational", "--env", str(dbs.env_file), "--log-format", "text", root=root)
    assert "environment: dev" in text.stdout
    assert f"  {OK[0]}  applied {applied['applied_at']} by alice@example.com (" in text.stdout

    dbs.server.psql(dbs.operational, "drop schema migration_meta cascade")  # applied, but not through the wrapper
    (doc,) = document(cli(dbs, root, "status"), "status.schema.json")["components"]
    assert doc["applied"][0]["applied_at"] is None and doc["applied"][0]["applied_by"] is None
