"""Schema docs rendering, the migration plan, classification coverage, smoke query files and the scratch server's
resolution rules — everything that needs no database."""

from pathlib import Path

import pytest

from migrate_wrapper.config import components
from migrate_wrapper.model import migrations
from migrate_wrapper.schema import markdown
from migrate_wrapper.postgres import scratch
from migrate_wrapper.config.classification import ColumnClass
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.errors import UsageError
from migrate_wrapper.postgres.catalog import Column, Schema, Table
from migrate_wrapper.verbs import docs, smoke

ROOT = Path(__file__).resolve().parents[2]


def orders_schema() -> Schema:
    table = Table("public", "orders", "table", "Orders | with a pipe", columns=[
        Column("id", "bigint", False, "generated always as identity", None),
        Column("note", "text", True, "'a|b'::text", "free\ntext"),
    ], constraints=[("primary key", "orders_pkey", "PRIMARY KEY (id)")],
        indexes=[("orders_pkey", "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
                  "backs constraint `orders_pkey`")])
    return Schema(tables=[table])


def test_tables_render_as_one_line_cells_with_pipes_escaped():
    lines = markdown.render_body(orders_schema(), {"orders": {"id": ColumnClass("internal")}})
    assert "| `note` | text | yes | 'a\\|b'::text | **unclassified** | free text |" in lines
    assert "| `id` | bigint | no | generated always as identity | internal |  |" in lines
    assert "Orders \\| with a pipe" in lines
    assert "- primary key `orders_pkey`: `PRIMARY KEY (id)`" in lines


def test_restricted_columns_list_their_requirements_and_missing_ones_stand_out():
    classes = {"orders": {"id": ColumnClass("internal"), "note": ColumnClass("restricted", "TLS", None)}}
    text = "\n".join(markdown.render_body(orders_schema(), classes))
    assert "- `note`\n  - encryption: TLS\n  - retention: **missing**" in text


def test_the_comparison_form_has_no_classification_and_no_extensions():
    schema = orders_schema()
    schema.extensions = ["pgcrypto"]
    text = markdown.compare_text(schema)
    assert "classification" not in text and "pgcrypto" not in text
    assert "Extensions" in "\n".join(markdown.render_body(schema, {}))


def test_coverage_names_every_gap():
    schema = orders_schema()
    classes = {
        "orders": {"id": ColumnClass("restricted"), "gone": ColumnClass("internal")},
        "ghosts": {"id": ColumnClass("internal")},
    }
    problems, classified = docs.coverage("operational", schema, classes)
    assert classified == 1
    assert problems == [
        "restricted column operational.orders.id has no encryption and no retention requirement",
        "unclassified column operational.orders.note",
        "classified column operational.orders.gone does not exist",
        "classified table operational.ghosts does not exist",
    ]


def test_the_plan_lists_every_migration_with_summary_and_both_checksums(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "202601010000_first.up.sql").write_text("\n-- First | one\n-- second line\nselect 1;\n")
    (folder / "202601010000_first.down.sql").write_text("select 2;\n")
    (folder / "202601020000_second.up.sql").write_text("select 3;\n")
    files = migrations.scan(folder)
    text = markdown.render_plan([("operational", "db/migrations/operational", files)])
    first, second = files.migrations
    assert (f"| 202601010000 | `first` | First \\| one | `{first.sha256('up')}` | `{first.sha256('down')}` |"
            in text)
    assert f"| 202601020000 | `second` | (no comment line) | `{second.sha256('up')}` | (missing) |" in text
    assert text == markdown.render_plan([("operational", "db/migrations/operational", files)])


def test_shipped_smoke_queries_parse_and_name_real_migrations():
    for component in components.load(ROOT):
        files = migrations.scan(ROOT / component.migrations_dir)
        queries = smoke.parse_queries(ROOT / component.smoke_file, files)
        assert queries and all(q.since is not None for q in queries), component.name
        assert [q.since.version for q in queries] == sorted(q.since.version for q in queries)


def test_smoke_query_since_and_lines(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "202601010000_first.up.sql").write_text("select 1;")
    files = migrations.scan(folder)
    path = tmp_path / "q.sql"
    path.write_text("-- header\nselect 1;\n\n-- since: 202601010000_first\n-- what it checks\nselect ';'\nfrom t;\n")
    first, second = smoke.parse_queries(path, files)
    assert (first.line, first.text, first.since) == (2, "select 1", None)
    assert (second.line, second.text, second.since.id) == (6, "select ';'\nfrom t", "202601010000_first")

    path.write_text("-- since: 202601010000_frist\nselect 1;\n")
    with pytest.raises(UsageError, match=r"q\.sql:2: `since: 202601010000_frist` names no migration"):
        smoke.parse_queries(path, files)
    path.write_text("selec 1;\n")
    with pytest.raises(UsageError, match="not valid SQL"):
        smoke.parse_queries(path, files)


def url(text: str) -> DatabaseUrl:
    return DatabaseUrl.parse(text, setting="X")


def test_in_production_the_target_is_never_the_scratch_server(tmp_path):
    target = url("postgres://app:pw@localhost:5432/operational")
    for same in ("postgres://other:pw@127.0.0.1/operational", "postgresql://app:pw@LOCALHOST:5432/operational"):
        with pytest.raises(UsageError, match="refusing to use the production target"):
            scratch.resolve(same, None, project_root=tmp_path, environment="production", targets=[target])
        # Elsewhere the same server is a fine scratch: only new, uniquely named databases are created there.
        assert scratch.resolve(same, None, project_root=tmp_path, environment="dev", targets=[target])
    other = scratch.resolve("postgres://u:p@localhost:5432/postgres", None, project_root=tmp_path,
                            environment="production", targets=[target])
    assert other.origin == "--scratch-url"


def test_explicit_url_wins_then_the_setting_and_without_either_or_the_embedded_script_none(tmp_path):
    assert scratch.resolve("postgres://a@h/x", "postgres://b@h/y", project_root=tmp_path).url.user == "a"
    assert scratch.resolve(None, "postgres://b@h/y", project_root=tmp_path).origin == "MIGRATION_SCRATCH_URL"
    with pytest.raises(UsageError, match="no scratch server: MIGRATION_SCRATCH_URL is not set"):
        scratch.resolve(None, None, project_root=tmp_path)  # no scripts/dev/local-postgres.sh there


def test_the_setting_is_read_from_the_environment_before_the_env_file(tmp_path, monkeypatch):
    from migrate_wrapper.config import settings

    env_file = tmp_path / "migrate.env"
    env_file.write_text("MIGRATION_SCRATCH_URL=postgres://file@h/db\n")
    monkeypatch.delenv("MIGRATION_SCRATCH_URL", raising=False)
    assert settings.load(env_file).scratch_url() == "postgres://file@h/db"
    monkeypatch.setenv("MIGRATION_SCRATCH_URL", "postgres://env@h/db")
    assert settings.load(env_file).scratch_url() == "postgres://env@h/db"
    monkeypatch.setenv("MIGRATION_SCRATCH_URL", "  ")
    assert settings.load(None).scratch_url() is None  # blank is unset


def test_a_scratch_copy_keeps_the_targets_in_database_parameters():
    target = url("postgres://u:p@prod:5432/app?sslmode=require&x-migrations-table=mig&search_path=app")
    server = url("postgres://s:q@scratch:5433/scratch_db?sslmode=disable")
    copied = scratch.carry_params(server, target)
    assert copied.host == "scratch" and copied.password == "q"
    assert dict(copied.params) == {"sslmode": "disable", "x-migrations-table": "mig", "search_path": "app"}
