import pytest
import sqlalchemy as sa

from include.core import db


@pytest.fixture
def empty_db(pg_server):
    name = "mig_empty"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = db.get_engine(pg_server.url(name))
    yield engine
    db.dispose_engines()
    pg_server.drop_database(name)


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migrations_apply_on_empty_database_and_are_recorded(empty_db):
    applied = db.migrate(empty_db)
    assert applied and applied[0] == "0001_core_schema"
    expected = {"advisors", "do_not_contact", "content_packs", "renders", "whatsapp_templates", "sending_numbers",
                "delivery_plan", "deliveries", "webhook_events", "ops_controls", "audit_log", "schema_migrations"}
    assert expected <= _tables(empty_db)
    with empty_db.connect() as c:
        versions = [r[0] for r in c.execute(sa.text("SELECT version FROM schema_migrations ORDER BY version"))]
    assert versions == sorted(versions) and len(versions) == len(applied)


def test_running_migrations_twice_is_a_noop(empty_db):
    db.migrate(empty_db)
    before = _tables(empty_db)
    assert db.migrate(empty_db) == []
    assert _tables(empty_db) == before


def test_failing_migration_leaves_schema_as_it_was(empty_db, tmp_path):
    for src in db.discover_migrations():
        (tmp_path / src.path.name).write_text(src.sql)
    db.migrate(empty_db, tmp_path)
    before = _tables(empty_db)
    (tmp_path / "9001_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nALTER TABLE advisors ADD COLUMN x int;\nSELECT * FROM no_such_table;")
    with pytest.raises(db.MigrationError, match="9001_broken failed and was rolled back"):
        db.migrate(empty_db, tmp_path)
    assert _tables(empty_db) == before
    cols = {c["name"] for c in sa.inspect(empty_db).get_columns("advisors")}
    assert "x" not in cols
    with empty_db.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM schema_migrations WHERE version = 9001")).scalar_one() == 0


def test_edited_applied_migration_is_refused(empty_db, tmp_path):
    for src in db.discover_migrations():
        (tmp_path / src.path.name).write_text(src.sql)
    db.migrate(empty_db, tmp_path)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        db.migrate(empty_db, tmp_path)


def test_badly_named_migration_file_is_refused(tmp_path):
    (tmp_path / "1_whatever.sql").write_text("SELECT 1")
    with pytest.raises(db.MigrationError, match="NNNN_name.sql"):
        db.discover_migrations(tmp_path)


def test_named_queries_load_and_cannot_escape_sql_dir():
    assert "INSERT INTO audit_log" in db.sql_text("audit/insert")
    with pytest.raises(FileNotFoundError, match="no named query"):
        db.query("does/not_exist")
    with pytest.raises(ValueError, match="escapes"):
        db.query("../migrations/0001_core_schema")


def test_canary_outcome_queries_stay_in_step_with_the_fan_out_ones():
    """The canary runs the fan-out's sender over `canary_sends`; its outcome-writing SQL must be the same
    statement on the other table (the :at fix once had to be made in both)."""
    from include.core.db import QUERIES_DIR

    def body(path):
        return [line for line in path.read_text().splitlines() if not line.startswith("--")]

    for name in ("record_outcome", "resolve_unknown"):
        fanout = [line.replace("UPDATE deliveries", "UPDATE canary_sends") for line in body(QUERIES_DIR / "fanout" / f"{name}.sql")]
        assert body(QUERIES_DIR / "canary" / f"{name}.sql") == fanout, name
