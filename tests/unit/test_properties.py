"""Property-based tests: the env-file parser and the migration-id parser never fail any other way than one
UsageError line, and they give back exactly what was written."""


from hypothesis import example, given, settings as hsettings, strategies as st

from migrate_wrapper.config import settings
from migrate_wrapper.errors import UsageError
from migrate_wrapper.model.migrations import MAX_VERSION, OPERATOR_ID, parse_id

KEYS = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\"\\'$"), max_size=60)


@hsettings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6), st.booleans(), st.booleans(), st.booleans())
def test_env_file_round_trip(tmp_path_factory, entries, crlf, bom, export):
    newline = "\r\n" if crlf else "\n"
    prefix = "export " if export else ""
    text = "".join(f'{prefix}{k}="{v}"{newline}' for k, v in entries.items())
    path = tmp_path_factory.mktemp("env") / "migrate.env"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    assert settings.read_env_file(path) == entries


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_env_file_garbage_is_a_usage_error_or_parses(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("env") / "migrate.env"
    path.write_bytes(data)
    try:
        values = settings.read_env_file(path)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
@example("202611010900_a\n")  # a trailing newline once slipped through "$"
@example("$(rm -rf /)")
def test_parse_id_accepts_exactly_operator_ids(text):
    if OPERATOR_ID.match(text) and int(OPERATOR_ID.match(text).group(1)) <= MAX_VERSION:
        version, title = parse_id(text)
        assert text.split("_", 1)[0].lstrip("0") in (str(version), "") and (title is None) == ("_" not in text)
    else:
        try:
            parse_id(text)
        except UsageError as exc:
            assert "is not a migration id" in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"accepted {text!r}")


@given(st.integers(0, 999999999999), st.from_regex(r"[a-z0-9]+(_[a-z0-9]+){0,3}", fullmatch=True))
def test_parse_id_round_trip(version, slug):
    assert parse_id(f"{version:012d}_{slug}") == (version, slug)
    assert parse_id(f"{version}_{slug}") == (version, slug)
    assert parse_id(str(version)) == (version, None)
