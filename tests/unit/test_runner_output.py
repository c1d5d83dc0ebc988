"""Parsing golang-migrate's real output shapes (copied from v4.19.1 runs) into events and one-line errors."""

import pytest

from migrate_wrapper.golang_migrate.output import (
    ErrorLine,
    NoChange,
    StepFinished,
    StepStarted,
    Stopping,
    go_duration_ms,
    parse_error,
    parse_line,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("12.3ms", 12.3), ("850µs", 0.85), ("726.457µs", 0.726457), ("1.2s", 1200.0), ("1m3s", 63000.0),
     ("1h2m3.5s", 3723500.0), ("500ns", 0.0005), ("3us", 0.003)],
)
def test_go_durations(text, ms):
    assert go_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "12", "ms", "1.2x", "1.2s extra"])
def test_go_duration_rejects_garbage(text):
    with pytest.raises(ValueError):
        go_duration_ms(text)


def test_verbose_step_start_and_finish():
    assert parse_line("2026/11/24 22:05:38 Read and execute 202601010000/u create_a\n") == StepStarted(
        202601010000, "up", "create_a"
    )
    finished = parse_line("2026/11/24 22:05:38 Finished 202601010100/d create_b (read 1.267349ms, ran 1.367448ms)")
    assert finished == StepFinished(202601010100, "down", "create_b", pytest.approx(1.367448))


def test_plain_step_line():
    assert parse_line("202601010100/u create_b (3.936137ms)") == StepFinished(
        202601010100, "up", "create_b", pytest.approx(3.936137)
    )


def test_title_with_spaces_and_parentheses():
    event = parse_line("Finished 7/u add (x) col (read 1ms, ran 2s)")
    assert event == StepFinished(7, "up", "add (x) col", pytest.approx(2000.0))


@pytest.mark.parametrize(
    "line",
    ["2026/11/24 22:05:42 Start buffering 202601010100/d create_b", "2026/11/24 22:05:42 Finished after 4.741873ms",
     "2026/11/24 22:05:42 Closing source and database", ""],
)
def test_chatter_is_ignored(line):
    assert parse_line(line) is None


def test_no_change_stopping_and_errors():
    assert parse_line("2026/11/24 22:05:42 no change") == NoChange()
    assert parse_line("Stopping after this running migration ...") == Stopping()
    assert parse_line("2026/11/24 22:05:42 error: file does not exist") == ErrorLine("file does not exist")


FAILED = (
    'migration failed: relation "nonexist" does not exist (column 15) in line 3: -- bad one\n'
    "create table c(id int);\n"
    "-- a comment that mentions (details: nothing) and in line 9: too\n"
    "select * from nonexist;\n"
    ' (details: pq: relation "nonexist" does not exist)'
)


def test_failed_migration_becomes_one_line_without_the_file():
    failure = parse_error(FAILED)
    assert failure.kind == "migration_failed"
    assert failure.sql_line == 3
    assert failure.message == 'relation "nonexist" does not exist (column 15)'
    assert "\n" not in failure.message and "create table" not in failure.message


def test_a_body_without_the_servers_answer_is_not_called_failed():
    # The driver's own error (no "migration failed: <server message>"): the statement may have committed.
    failure = parse_error("migration failed in line 0: insert into a values (1); (details: driver: bad connection)")
    assert failure.kind == "no_answer"
    assert failure.message == "driver: bad connection"
    assert failure.sql_line is None


@pytest.mark.parametrize("text", [
    "try lock failed in line 0: SELECT pg_advisory_lock($1) (details: pq: canceling statement due to lock timeout)",
    "failed to open database: try lock failed in line 0: SELECT pg_advisory_lock($1) (details: pq: canceling "
    "statement due to lock timeout)",  # 4.19.1 wraps it
])
def test_the_lock_error_in_every_form_is_migration_lock(text):
    assert parse_error(text).kind == "migration_lock"


def test_a_failed_version_update_after_the_body_is_told_apart_from_a_failed_body():
    # SetVersion's errors name golang-migrate's own statement: the body before it had returned (committed).
    truncate = parse_error('pq: canceling statement due to user request in line 0: TRUNCATE "public"."schema_migrations"')
    assert truncate.kind == "set_version"
    assert "canceling statement due to user request" in truncate.message
    insert = parse_error('pq: could not extend file in line 0: INSERT INTO "x"."schema_migrations" (version, dirty) '
                         'VALUES ($1, $2)')
    assert insert.kind == "set_version"
    assert parse_error("transaction commit failed in line 0:  (details: driver: bad connection)").kind == \
        "version_commit"
    body = parse_error('migration failed: canceling statement due to user request in line 0: TRUNCATE "public"."t"; '
                       "(details: pq: canceling statement due to user request)")
    assert body.kind == "migration_failed"


def test_dirty_missing_version_connect_and_source():
    assert parse_error("Dirty database version 202601010200. Fix and force version.").version == 202601010200
    missing = parse_error(
        "no migration found for version 42: read down for version 42 .: file does not exist"
        "no migration found for version 42: read down for version 42 .: file does not exist"
    )
    assert (missing.kind, missing.version) == ("missing_version", 42)
    assert parse_error("failed to open database: dial tcp 127.0.0.1:1: connect: connection refused").kind == "connect"
    assert parse_error('failed to open source, "file:///nonexist": open .: no such file').kind == "source"
    other = parse_error("something\nnew")
    assert (other.kind, other.message) == ("other", "something new")
