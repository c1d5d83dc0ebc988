import pytest

from migrate_wrapper.dburl import DatabaseUrl, mask_text
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


def test_password_round_trips_to_golang_migrate_url():
    url = parse(f"postgresql://app:{ENCODED}@db:5432/orders?sslmode=disable")
    out = url.for_migrate({"application_name": "db-migrate-cli", "sslmode": "require"})
    assert out.startswith(f"postgresql://app:{ENCODED}@db:5432/orders?")
    assert "sslmode=disable" in out and "sslmode=require" not in out  # the operator's own setting wins
    assert "application_name=db-migrate-cli" in out


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
