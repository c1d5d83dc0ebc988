import os

import pytest

from tests.conftest import ROOT

from migrate_wrapper.config import components, settings
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
    operational, analytics = components.resolve("all", ROOT)
    assert s.url_for(operational).database == "op"
    assert s.url_for(analytics).database == "an"
    assert s.migration_environment == "staging"
    assert s.migration_window_seconds == 600


def test_environment_wins_over_file(tmp_path, monkeypatch):
    path = write(tmp_path, b"DB_URL=postgres://u:p@h/file\nMIGRATION_COMPONENT=analytics\n")
    monkeypatch.setenv("DB_URL", "postgres://u:p@h/env")
    s = settings.load(path)
    assert s.url_for(components.resolve("operational", ROOT)[0]).database == "env"
    assert s.migration_component == "analytics"
    assert s.overridden == ("DB_URL",)


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
        s.url_for(components.resolve("analytics", ROOT)[0])


def test_components_resolve():
    assert [c.name for c in components.resolve("all", ROOT)] == ["operational", "analytics"]
    assert components.resolve("analytics", ROOT)[0].url_setting == "ANALYTICS_URL"
    with pytest.raises(UsageError, match="unknown component 'billing'"):
        components.resolve("billing", ROOT)
    with pytest.raises(UsageError, match="no component chosen"):
        components.resolve(None, ROOT)


def _project(tmp_path, text: str, folders=("db/a", "db/b")):
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / components.PROJECT_FILE).write_text(text)
    return tmp_path


def test_components_come_from_the_project_file(tmp_path, monkeypatch):
    root = _project(tmp_path, '[components.billing]\nurl = "BILLING_URL"\nmigrations = "db/a"\ntable = "mig"\n')
    (billing,) = components.load(root)
    assert (billing.name, billing.url_setting, billing.migrations_table) == ("billing", "BILLING_URL", "mig")
    assert billing.smoke_file == "db/smoke/billing.sql" and billing.schema_doc == "db/schema/billing.md"
    monkeypatch.setenv("BILLING_URL", "postgres://u@h/d")
    url = settings.load(None).url_for(billing)
    assert url.param("x-migrations-table") == "mig"  # golang-migrate is told the component's table


@pytest.mark.parametrize(("text", "message"), [
    ('[components.a]\nurl = "A_URL"\nmigrations = "db/a"\nfolder = "x"\n', "components.a.folder: unknown key"),
    ('[components.a]\nurl = "A_URL"\nmigrations = "db/nope"\n', "db/nope is not a directory"),
    ('[components.a]\nurl = "A_URL"\nmigrations = "db/a"\n[components.b]\nurl = "B_URL"\nmigrations = "db/a"\n',
     "uses the folder of component a"),
    ('[components.a]\nmigrations = "db/a"\n', "'url' is required"),
    ('[components.a]\nurl = "a url"\nmigrations = "db/a"\n', "is not a URL setting's name"),
    ('[components.a]\nurl = "OPS_DSN"\nmigrations = "db/a"\n', "ending in _URL"),
    ('[components.all]\nurl = "A_URL"\nmigrations = "db/a"\n', "not 'all'"),
    ('[component.a]\n', "unknown key"),
    ("[components.a\n", "migrate-wrapper.toml: "),
    ("", "no component is declared"),
])
def test_a_bad_project_file_is_one_line(tmp_path, text, message):
    with pytest.raises(UsageError) as err:
        components.load(_project(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def _numeric_fields():
    for name, field in settings.Settings.model_fields.items():
        bounds = {type(m).__name__: m for m in field.metadata}
        if bounds and any(k in bounds for k in ("Gt", "Ge")):
            yield name, bounds


@pytest.mark.parametrize(("name", "bounds"), list(_numeric_fields()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_number_is_refused_outside_its_range_and_taken_at_its_limits(tmp_path, monkeypatch, name, bounds):
    low = bounds["Gt"].gt if "Gt" in bounds else bounds["Ge"].ge
    high = bounds["Le"].le
    key = name.upper()
    bad = [str(low) if "Gt" in bounds else str(low - 1), str(high + 1), "nan", "inf", "-inf", "ten"]
    for value in bad:
        monkeypatch.setenv(key, value)
        with pytest.raises(UsageError, match=key):
            settings.load(None)
    for value in ([str(low + 1)] if "Gt" in bounds else [str(low)]) + [str(high)]:
        monkeypatch.setenv(key, value)
        settings.load(None)  # at its limits: taken


def test_the_project_files_lint_table_is_checked(tmp_path):
    good = '[components.a]\nurl = "A_URL"\nmigrations = "db/a"\n'
    assert components.house_names(_project(tmp_path, good)) is True
    assert components.house_names(_project(tmp_path, good + '[lint]\nnames = "golang-migrate"\n')) is False
    with pytest.raises(UsageError, match="lint.names: expected one of: house, golang-migrate"):
        components._load.cache_clear()
        components.load(_project(tmp_path, good + '[lint]\nnames = "free"\n'))


def test_a_url_setting_in_two_spellings_is_refused_where_it_is_used(monkeypatch):
    monkeypatch.setenv("DB_URL", "postgres://u@h/one")
    monkeypatch.setenv("db_url", "postgres://u@h/two")
    monkeypatch.setenv("REDIS_URL", "redis://x")  # someone else's: never in the way
    monkeypatch.setenv("redis_url", "redis://y")
    s = settings.load(None)
    with pytest.raises(UsageError, match="DB_URL and db_url are both set"):
        s.url_for(components.resolve("operational", ROOT)[0])
