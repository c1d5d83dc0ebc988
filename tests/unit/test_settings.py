import os

import pytest

from migrate_wrapper import components, settings
from migrate_wrapper.errors import UsageError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for key in list(os.environ):
        if key.startswith(("DB_URL", "ANALYTICS_URL", "MIGRATION_", "MIGRATE_", "OTEL_")):
            monkeypatch.delenv(key)


def write(tmp_path, data: bytes):
    path = tmp_path / "migrate.env"
    path.write_bytes(data)
    return path


def test_file_values_with_bom_crlf_export_and_quotes(tmp_path):
    path = write(
        tmp_path,
        b"\xef\xbb\xbf# comment\r\nexport DB_URL='postgres://u:p@h/op'\r\nANALYTICS_URL=\"postgres://u:p@h/an\"\r\n"
        b"MIGRATION_ENVIRONMENT=staging\r\n",
    )
    s = settings.load(path)
    assert s.db_url.get_secret_value() == "postgres://u:p@h/op"
    assert s.analytics_url.get_secret_value() == "postgres://u:p@h/an"
    assert s.migration_environment == "staging"
    assert s.migration_window_seconds == 600


def test_environment_wins_over_file(tmp_path, monkeypatch):
    path = write(tmp_path, b"DB_URL=postgres://u:p@h/file\nMIGRATION_COMPONENT=analytics\n")
    monkeypatch.setenv("DB_URL", "postgres://u:p@h/env")
    s = settings.load(path)
    assert s.db_url.get_secret_value() == "postgres://u:p@h/env"
    assert s.migration_component == "analytics"


def test_otel_keys_in_the_file_reach_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")  # registered with monkeypatch, so the value load() sets
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")  # is removed after the test instead of leaking into the next
    path = write(tmp_path, b"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318\nOTEL_SERVICE_NAME=from-file\n")
    settings.load(path)
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert os.environ["OTEL_SERVICE_NAME"] == "from-env"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"DB_URL=postgres://u:p@h/d\nthis is not a line\n", "migrate.env:2: cannot parse this line"),
        (b"DB_URL=a\nDB_URL=b\n", "migrate.env:2: DB_URL is set again (first on line 1)"),
        (b"DB_URL\n", "migrate.env:1: DB_URL has no value"),
        (b"DB_URL=\xff\xfe\n", "is not UTF-8 text"),
        (b"MIGRATION_ENVIRONMENT=prod\n", "MIGRATION_ENVIRONMENT: Input should be 'dev', 'staging' or 'production'"),
        (b"MIGRATION_WINDOW_SECONDS=0\n", "MIGRATION_WINDOW_SECONDS: Input should be greater than 0"),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path, data, message):
    with pytest.raises(UsageError) as err:
        settings.load(write(tmp_path, data))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        settings.load(tmp_path / "nope.env")


def test_missing_url_names_the_setting(tmp_path):
    s = settings.load(write(tmp_path, b"DB_URL=postgres://u:p@h/d\n"))
    with pytest.raises(UsageError, match="ANALYTICS_URL is not set"):
        s.url_for(components.resolve("analytics")[0])


def test_components_resolve():
    assert [c.name for c in components.resolve("all")] == ["operational", "analytics"]
    assert components.resolve("analytics")[0].url_setting == "ANALYTICS_URL"
    with pytest.raises(UsageError, match="unknown component 'billing'"):
        components.resolve("billing")
    with pytest.raises(UsageError, match="no component chosen"):
        components.resolve(None)
