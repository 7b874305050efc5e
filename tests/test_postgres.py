"""The same store, accounts, audit chain and registry on PostgreSQL, through MEDUI_DATABASE_URL alone.

On the PostgreSQL pass (MEDUI_TEST_DATABASE_URL, see tests/pg_cluster.py) conftest already gives each test its own
database; otherwise this module starts a throwaway cluster (Debian's `postgresql` package; .ci/run installs it).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pg_cluster
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, update

from medui import audit, auth, records, registry
from medui.store import alembic_config, engine, reset_engines, session_scope
from medui.store.models import AuditEvent, AuditHead, Base

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres_url():
    """This module's own database, or None where conftest provides one per test."""
    if os.environ.get("MEDUI_TEST_DATABASE_URL"):
        yield None
        return
    if not pg_cluster.available():
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql); .ci/run installs them")
    with pg_cluster.cluster() as server:
        yield pg_cluster.create_database(server, "medui")
        reset_engines()


@pytest.fixture(autouse=True)
def on_postgres(postgres_url, monkeypatch):
    if postgres_url is None:
        return
    monkeypatch.setenv("MEDUI_DATABASE_URL", postgres_url)
    reset_engines()
    with engine().begin() as connection:  # each test starts from empty tables and a fresh audit chain
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        connection.execute(AuditHead.__table__.insert().values(id=1, last_hash=audit.GENESIS_HASH, count=0))


def test_migrations_build_the_orm_schema_on_postgres():
    with engine().connect() as connection:
        assert engine().dialect.name == "postgresql"
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrations_go_down_to_nothing_and_up_again_on_postgres():
    config = alembic_config(engine())
    command.downgrade(config, "base")
    assert set(inspect(engine()).get_table_names()) == {"alembic_version"}
    command.upgrade(config, "head")
    with engine().connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    audit.record("admin", "sign_in")  # the upgrade seeded the chain's head again
    assert audit.verify().ok


def test_accounts_sessions_and_lockout_on_postgres(monkeypatch):
    monkeypatch.setenv("MEDUI_MAX_FAILED_SIGNINS", "2")
    auth.create_user("dr.grey", "Correct-Horse-9", "clinician", actor="test")
    token = auth.start_session(auth.authenticate("dr.grey", "Correct-Horse-9").username)
    assert auth.resume_session(token).username == "dr.grey"
    for _ in range(2):
        with pytest.raises(auth.AuthError):
            auth.authenticate("dr.grey", "wrong-password")
    assert auth.get_user("dr.grey").locked


def test_audit_chain_detects_an_edit_on_postgres():
    for action in ("sign_in", "user_add", "sign_out"):
        audit.record("admin", action)
    assert audit.verify().ok
    with session_scope() as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == 2).values(actor="mallory"))
    assert "row 2 was edited after it was written" in audit.verify().problems


def test_concurrent_audit_writers_keep_one_chain_on_postgres():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: audit.record(f"user{i}", "sign_in"), range(40)))
    report = audit.verify()
    assert report.ok and report.checked == 40


def test_analyses_and_registry_stages_on_postgres(tmp_path, shipped_models):
    import torch
    from safetensors.torch import save_file

    records.save_analysis("note", {"n": 1}, created_by="dr.a", input_sha256="0" * 64, patient="bed-1")
    assert records.recent_analyses("dr.a")[0].patient == "bed-1"
    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    mv = registry.register_version("demo", "ecg", {"model.safetensors": tmp_path / "w.safetensors"},
                                   base_model="none", method="full", labels=[], metrics={}, provenance={},
                                   actor="test")
    registry.promote("demo", mv.version, actor="test")
    assert registry.production_versions() == {"demo": mv.version}


def test_stored_times_read_back_in_utc_whatever_the_server_zone():
    from datetime import date, datetime, timezone

    from medui.store.models import Analysis

    with session_scope() as session:  # 01:30 UTC is still the day before in the test server's zone (New York)
        session.add(Analysis(kind="notes", input_hash="0" * 64, created_by="dr.a", result={"entities": []},
                             created_at=datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)))
    assert records.recent_analyses("dr.a")[0].created_at == "2026-03-02 01:30"
    with session_scope() as session:
        stored = session.scalars(select(Analysis.created_at)).one()
    assert stored.utcoffset() in (None, timedelta(0)) and stored.date() == date(2026, 3, 2)


def test_a_nan_metric_is_stored_as_null():
    analysis_id = records.save_analysis("ecg", {"hrv": {"sdnn": float("nan"), "rmssd": float("inf")}, "hr": 61.0},
                                        created_by="dr.a", input_sha256="0" * 64, patient="bed-1")
    assert records.get_analysis(analysis_id).result == {"hrv": {"sdnn": None, "rmssd": None}, "hr": 61.0}


def test_an_analysis_id_beyond_32_bits_is_not_found():
    assert records.get_analysis(2**31) is None and records.get_analysis(10**20) is None


def test_a_patient_identifier_from_a_file_that_the_column_cannot_hold_is_audited_clipped():
    audit.record("dr.a", "phi_reveal", patient="P" * 300)
    audit.record("dr.a", "phi_reveal", patient="12\x0034")
    assert [e["patient"] for e in audit.events()] == ["1234", "P" * 128]
    assert audit.verify().ok


def test_parallel_wrong_passwords_still_lock_the_account_on_postgres(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MEDUI_MAX_FAILED_SIGNINS", "4")
    auth.create_user("dr.grey", "Correct-Horse-9", "clinician", actor="test")

    def guess(_):
        with pytest.raises(auth.AuthError):
            auth.authenticate("dr.grey", "wrong-password")

    with ThreadPoolExecutor(max_workers=8) as pool:  # without a row lock each reads the same count: no lockout
        list(pool.map(guess, range(8)))
    assert auth.get_user("dr.grey").locked


def _slowed(monkeypatch, module, name: str) -> None:
    """Hold each caller of module.name for a moment after it returns, so two transactions overlap there."""
    import time

    original = getattr(module, name)

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        time.sleep(0.5)
        return result

    monkeypatch.setattr(module, name, held)


def test_two_promotions_of_one_model_at_once_leave_one_production_version(tmp_path, shipped_models, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from safetensors.torch import save_file

    versions = []
    for n in range(2):
        save_file({"w": torch.full((2,), float(n))}, str(tmp_path / f"w{n}.safetensors"))
        versions.append(registry.register_version("demo", "ecg", {"model.safetensors": tmp_path / f"w{n}.safetensors"},
                                                  base_model="none", method="full", labels=[], metrics={},
                                                  provenance={}, actor="test").version)
    _slowed(monkeypatch, registry, "_set_stage")  # both would archive the production rows they saw, then promote
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda v: registry.promote("demo", v, actor="test"), versions))
    stages = [mv.stage for mv in registry.list_versions("demo")]
    assert stages.count("production") == 1, stages
    assert len(audit.events(action="model_promote")) == 2  # each promotion's audit event committed with it


def test_two_admins_demoting_each_other_at_once_leave_an_admin(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    for name in ("admin.a", "admin.b"):
        auth.create_user(name, "Correct-Horse-9", "admin", actor="test")
    assert {u.username for u in auth.list_users() if u.role == "admin"} == {"admin.a", "admin.b"}
    _slowed(monkeypatch, auth, "_ensure_another_admin")  # both would count the other as still an admin

    def demote(pair):
        try:
            auth.set_role(pair[0], "clinician", actor=pair[1])
            return "demoted"
        except auth.AuthError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(demote, [("admin.a", "admin.b"), ("admin.b", "admin.a")]))
    assert sorted(outcomes) == ["This is the last active admin; add another admin first.", "demoted"], outcomes
    assert len([u for u in auth.list_users() if u.role == "admin" and u.active]) == 1
