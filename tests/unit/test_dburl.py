import pytest

from migrate_wrapper.config.dburl import DatabaseUrl, mask_text
from migrate_wrapper.errors import UsageError

CANARY = "canary-P@ss:w/rd%#"
ENCODED = "canary-P%40ss%3Aw%2Frd%25%23"


def parse(raw: str) -> DatabaseUrl:
    return DatabaseUrl.parse(raw, setting="DB_URL")


def test_masked_form_hides_the_password():
    url = parse(f"postgres://app:{ENCODED}@db.internal:6432/orders?sslmode=require")
    assert url.password == CANARY
    assert url.masked() == "postgres://app:***@db.internal:6432/orders"
    assert CANARY not in repr(url) and ENCODED not in repr(url)


def test_golang_migrates_url_carries_no_secret_and_its_environment_the_password():
    url = parse(f"postgresql://app:{ENCODED}@db:5432/orders?sslmode=disable")
    out = url.for_migrate({"application_name": "db-migrate-cli", "sslmode": "require"})
    assert out.startswith("postgresql://app@db:5432/orders?")  # a command line: every local user can read it
    assert CANARY not in out and ENCODED not in out
    assert "sslmode=disable" in out and "sslmode=require" not in out  # the operator's own setting wins
    assert "application_name=db-migrate-cli" in out
    assert url.migrate_env() == {"PGPASSWORD": CANARY}  # lib/pq reads it when the URL has none


def test_password_and_sslpassword_parameters_stay_off_the_command_line_too():
    url = parse("postgres://app@db/orders?password=Sekr3t-param&sslpassword=Key-Sekr3t&sslmode=require")
    out = url.for_migrate()
    assert "Sekr3t" not in out and "password" not in out
    assert url.migrate_env() == {"PGPASSWORD": "Sekr3t-param"}
    assert "Sekr3t" not in url.masked()


def test_masked_ipv6_keeps_its_brackets():
    assert parse("postgres://u:pw-secret@[2001:db8::1]:5432/d").masked() == "postgres://u:***@[2001:db8::1]:5432/d"


def test_psycopg_kwargs_route_parameters_like_lib_pq():
    url = parse("postgres://u:p@h:1/d?x-migrations-table=m&lock_timeout=5000&search_path=app&sslmode=disable")
    kwargs = url.psycopg_kwargs(connect_timeout=5)
    assert kwargs["sslmode"] == "disable"
    assert kwargs["options"] == "-c lock_timeout=5000 -c search_path=app"
    assert "x-migrations-table" not in kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["dbname"], kwargs["user"]) == ("h", "1", "d", "u")


def test_sslmode_defaults_to_require_like_lib_pq(monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert parse("postgres://u@h/d").psycopg_kwargs(connect_timeout=5)["sslmode"] == "require"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("Sekr3t@db.internal:5432/orders", "no scheme"),
        ("mysql://u:Sekr3t@h/d", "scheme 'mysql://'"),
        ("postgres://u:Sekr#3t@h/d", "'#'"),
        ("postgres://u:Sekr%zz3t@h/d", "%XX"),
        ("postgres://u:Sekr/3t@h/d", "invalid"),
        ("postgres://u:Sekr3t@h:notaport/d", "invalid host or port"),
        ("postgres://u:Sekr3t@h", "names no database"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(raw, fragment):
    with pytest.raises(UsageError) as err:
        parse(raw)
    assert fragment in str(err.value)
    assert "Sekr" not in str(err.value)  # not even the part of the password before a bad character


def test_mask_text_hides_known_secrets_and_userinfo():
    url = parse(f"postgres://app:{ENCODED}@h/d")
    text = f"dial postgres://app:{ENCODED}@h/d failed; password {CANARY}"
    masked = url.mask_text(text)
    assert CANARY not in masked and ENCODED not in masked
    assert "postgres://app:***@h/d" in masked
    assert mask_text("see postgresql://bob:hunter2@x/y") == "see postgresql://bob:***@x/y"


@pytest.mark.parametrize("raw", [
    "postgres://u@h/d?x-statement-timeout=%C2%B2",  # a superscript digit: isdigit() would take it
    "postgres://u@h/d?connect_timeout=" + "9" * 5000,
    "postgres://u@h/d?x-migrations-table=t&x-migrations-table-quoted=true",
])
def test_parameters_that_would_crash_later_are_one_usage_error(raw):
    with pytest.raises(UsageError) as err:
        parse(raw)
    assert "\n" not in str(err.value)


def test_a_component_may_name_a_quoted_table_the_url_does_not():
    url = parse("postgres://u@h/d?x-migrations-table-quoted=true")
    merged = url.with_defaults({"x-migrations-table": '"ops"."schema_migrations"'})
    assert merged.param("x-migrations-table") == '"ops"."schema_migrations"'
    with pytest.raises(UsageError, match="is not a quoted name"):
        url.with_defaults({"x-migrations-table": "plain"})


def test_pg_dump_never_gets_an_sslpassword_on_its_command_line():
    from migrate_wrapper.config import settings as settings_module
    from migrate_wrapper.runtime.rehearsal import dump_schema

    url = parse("postgres://u:pw-secret@h/d?sslpassword=key-secret&sslmode=require")
    with pytest.raises(UsageError, match="sslpassword"):
        dump_schema(url, settings_module.Settings())


def test_a_secret_learnt_after_a_first_mask_is_still_masked(monkeypatch):
    """The longest-first order of the secrets is memoised: a URL parsed later (its password joins KNOWN_SECRETS)
    must not be masked with the order worked out before it."""
    from migrate_wrapper.config import dburl

    monkeypatch.setattr(dburl, "KNOWN_SECRETS", set())
    first = parse("postgres://app:first-secret@h/d")
    assert first.mask_text("x first-secret second-secret") == "x *** second-secret"
    parse("postgres://app:second-secret@h/d")  # learnt now
    assert first.mask_text("x first-secret second-secret") == "x *** ***"
