import pytest

from migrate_wrapper.model import migrations, plan
from migrate_wrapper.model.plan import VersionState
from migrate_wrapper.errors import UsageError
from migrate_wrapper.model.plan import History


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
    assert not any("7_Bad_Name" in p for p in found.problems)  # another history's ids are its own (lint judges new ones)
    assert not any("no_down" in p for p in found.problems)  # said once, by status's drift
    assert not any("README" in p for p in found.problems)


def test_versions_sort_as_numbers(tmp_path):
    folder = make(tmp_path / "m", *pair(10, "ten"), *pair(2, "two"), *pair(1, "one"), "9_x.up.sql.bak")
    found = migrations.scan(folder)
    assert [m.id for m in found.migrations] == ["1_one", "2_two", "9_x", "10_ten"]
    assert found.problems[0].startswith("9_x.up.sql.bak")


def test_duplicate_version_is_refused_like_golang_migrate(tmp_path):
    folder = make(tmp_path / "m", "202601010000_a.up.sql", "202601010000_b.up.sql")
    with pytest.raises(UsageError, match="duplicate up migration for version 202601010000"):
        migrations.scan(folder)


@pytest.mark.parametrize(("typed", "parsed"), [
    ("202601010000_a", (202601010000, "a")), ("1_create_tables", (1, "create_tables")),
    ("0001_initial_schema", (1, "initial_schema")), ("20240826120919_add-users", (20240826120919, "add-users")),
    ("0", (0, None)), ("202601010000", (202601010000, None)), ("3_v1.2", (3, "v1.2")),
])
def test_parse_id_takes_every_id_golang_migrate_accepts(typed, parsed):
    assert migrations.parse_id(typed) == parsed


def test_missing_folder(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        migrations.scan(tmp_path / "nope")


@pytest.mark.parametrize("bad", ["x_y", "202601010000_a;ls", "", "_a", "1_a b", "1_$(id)", "1_a\n",
                                 "99999999999999999999_a"])
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
    assert [(d.kind, d.migration, d.message) for d in st.drift] == [
        ("no_down_file", "202601010200_c", "202601010200_c has no down file")]
    assert st.verdict == "pending"  # an up-only migration blocks only a rollback past it: not drift

    unknown = plan.status("operational", "x", files, state(202601019999))
    assert unknown.drift[0].kind == "unknown_version" and unknown.verdict == "drift"
    assert "database version 202601019999 is not among the migration files" in unknown.drift[0].message

    skipped = plan.status("operational", "x", files, state(202601010100), history=History(covered_from=-1, applied={202601010100}))
    assert any(d.kind == "skipped" and d.migration == "202601010000_a" and "sorts below the applied version but was "
               "never applied" in d.message for d in skipped.drift)
    assert [m.id for m in skipped.applied] == ["202601010100_b"]
    assert skipped.verdict == "drift"

    assert plan.status("operational", "x", files, state(202601010200)).verdict == "ok"  # c has no down file: still ok
    assert plan.status("operational", "x", files, state(202601010100, dirty=True)).verdict == "dirty"


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


def test_a_file_rewritten_in_place_is_hashed_again(tmp_path, monkeypatch):
    """file_sha256 remembers digests by what identifies a file's content without reading it: an edit of the same
    size, even with its mtime set back, changes the ctime and is read again."""
    import hashlib
    import os
    import time

    monkeypatch.setattr(migrations, "RACY_NS", 0)  # remember even a file written a moment ago
    path = tmp_path / "1_a.up.sql"
    path.write_text("select 1;\n")
    assert migrations.file_sha256(path) == hashlib.sha256(b"select 1;\n").hexdigest()
    before = os.stat(path)
    time.sleep(0.05)  # file times tick with the kernel's clock (coarse on older kernels): let the edit's ctime differ
    path.write_text("select 2;\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert migrations.file_sha256(path) == hashlib.sha256(b"select 2;\n").hexdigest()


def test_a_file_changed_a_moment_ago_is_never_remembered(tmp_path):
    """The racy case: within one tick of a coarse file clock a same-size rewrite keeps the file's identity, so a file
    changed less than RACY_NS ago is hashed again every time."""
    import hashlib
    import os

    path = tmp_path / "1_a.up.sql"
    path.write_text("select 1;\n")
    assert migrations.file_sha256(path) == hashlib.sha256(b"select 1;\n").hexdigest()
    assert not [key for key in migrations._DIGESTS if key[0] == str(path)]
    old = path.stat().st_mtime_ns - 10 * 10**9
    os.utime(path, ns=(old, old))  # its ctime is still now: not yet old enough
    migrations.file_sha256(path)
    assert not [key for key in migrations._DIGESTS if key[0] == str(path)]
