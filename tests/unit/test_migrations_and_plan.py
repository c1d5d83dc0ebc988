import pytest

from migrate_wrapper import migrations, plan
from migrate_wrapper.db import VersionState
from migrate_wrapper.errors import UsageError
from migrate_wrapper.ledger import History


def make(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"-- {name}\nselect 1;\n")
    return folder


def pair(version, slug):
    return (f"{version}_{slug}.up.sql", f"{version}_{slug}.down.sql")


def state(version, dirty=False):
    return VersionState(version, dirty, version is not None, "public", "schema_migrations")


def test_scan_pairs_sorts_and_flags_breaches(tmp_path):
    folder = make(
        tmp_path / "m", *pair(202601010100, "b"), *pair(202601010000, "a"),
        "202601010200_no_down.up.sql", "README.md", "notes.sql", "7_Bad_Name.up.sql", "7_Bad_Name.down.sql",
    )
    found = migrations.scan(folder)
    assert [m.id for m in found.migrations] == ["7_Bad_Name", "202601010000_a", "202601010100_b", "202601010200_no_down"]
    assert any("notes.sql: not a migration file name" in p for p in found.problems)
    assert any("7_Bad_Name" in p and "YYYYMMDDHHMM_slug" in p for p in found.problems)
    assert any("202601010200_no_down: has no down file" in p for p in found.problems)
    assert not any("README" in p for p in found.problems)


def test_duplicate_version_is_refused_like_golang_migrate(tmp_path):
    folder = make(tmp_path / "m", "202601010000_a.up.sql", "202601010000_b.up.sql")
    with pytest.raises(UsageError, match="duplicate up migration for version 202601010000"):
        migrations.scan(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        migrations.scan(tmp_path / "nope")


@pytest.mark.parametrize("bad", ["202601010000", "20260101000_a", "202601010000_A", "x_y", "202601010000_a;ls", ""])
def test_parse_id_rejects(bad):
    with pytest.raises(UsageError, match="is not a migration id"):
        migrations.parse_id(bad)


def test_status_applied_pending_and_drift(tmp_path):
    files = migrations.scan(make(tmp_path / "m", *pair(202601010000, "a"), *pair(202601010100, "b"),
                                 "202601010200_c.up.sql"))
    st = plan.status("operational", "postgres://u:***@h:5432/d", files, state(202601010000))
    assert [m.id for m in st.applied] == ["202601010000_a"]
    assert [m.id for m in st.pending] == ["202601010100_b", "202601010200_c"]
    assert st.version_label == "202601010000_a"
    assert st.drift == ["202601010200_c has no down file"]

    unknown = plan.status("operational", "x", files, state(202601019999))
    assert "database version 202601019999 is not among the migration files" in unknown.drift[0]

    skipped = plan.status("operational", "x", files, state(202601010100), history=History(covered_from=-1, applied={202601010100}))
    assert any("202601010000_a sorts below the applied version but was never applied" in d for d in skipped.drift)
    assert [m.id for m in skipped.applied] == ["202601010100_b"]


def test_rollback_plan(tmp_path):
    files = migrations.scan(make(tmp_path / "m", *pair(202601010000, "a"), *pair(202601010100, "b"),
                                 *pair(202601010200, "c")))
    st = plan.status("operational", "x", files, state(202601010200))
    rb = plan.rollback(st, "202601010100_b")
    assert [m.id for m in rb.steps] == ["202601010200_c", "202601010100_b"]
    assert rb.end_version == 202601010000
    assert plan.rollback(st, "202601010000_a").end_version is None
    with pytest.raises(UsageError, match="202601010100 is 202601010100_b, not 202601010100_x; applied versions: "
                                         "202601010000_a, 202601010100_b, 202601010200_c"):
        plan.rollback(st, "202601010100_x")
    partly = plan.status("operational", "x", files, state(202601010000))
    with pytest.raises(UsageError, match="202601010200_c is not applied"):
        plan.rollback(partly, "202601010200_c")
