import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from medui import records
from medui.store import engine, session_scope
from medui.store.models import Base, Patient


def test_migrations_build_exactly_the_orm_schema():
    with engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(medui_home):
    if engine().dialect.name != "sqlite":
        pytest.skip("SQLite's own settings and file; PostgreSQL always enforces foreign keys and keeps no file here")
    with engine().connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (medui_home / "medui.db").exists()
    assert {"users", "audit_events", "patients", "analyses", "model_stages"} <= set(inspect(engine()).get_table_names())


def test_a_failed_transaction_keeps_what_was_stored():
    with session_scope() as session:
        session.add(Patient(identifier="bed-12", created_by="dr.a"))
    try:
        with session_scope() as session:
            session.add(Patient(identifier="bed-13", created_by="dr.a"))
            raise RuntimeError("crash mid-way")
    except RuntimeError:
        pass
    with session_scope() as session:
        assert [p.identifier for p in session.query(Patient)] == ["bed-12"]


def test_analyses_are_saved_per_user_with_patient_and_audited():
    first = records.save_analysis("note", {"entities": 3}, created_by="dr.a", input_sha256=records.input_hash(b"x"),
                                  patient="bed-12", model_name="notes-ner", model_version="2")
    records.save_analysis("ecg", {"hr": 61}, created_by="dr.b", input_sha256=records.input_hash(b"y"))
    mine = records.recent_analyses("dr.a")
    assert [(a.id, a.kind, a.patient, a.model, a.result) for a in mine] == [
        (first, "note", "bed-12", "notes-ner v2", {"entities": 3})]
    from medui import audit
    assert audit.events(action="analysis", actor="dr.a")[0]["patient"] == "bed-12"


def test_patient_identifier_is_validated():
    with pytest.raises(ValueError, match="printable"):
        records.save_analysis("note", {}, created_by="dr.a", input_sha256="0" * 64, patient="  ")
    with session_scope() as session:
        assert session.execute(text("select count(*) from analyses")).scalar() == 0
