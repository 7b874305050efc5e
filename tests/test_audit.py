import pytest
from sqlalchemy import delete, update

from medui import audit
from medui.store import session_scope
from medui.store.models import AuditEvent


@pytest.fixture
def three_events():
    audit.record("admin", "sign_in")
    audit.record("admin", "user_add", target="dr.a")
    audit.record("dr.a", "sign_in", "failure", reason="Wrong username or password.")


def test_an_untouched_chain_verifies(three_events):
    report = audit.verify()
    assert report.ok and report.checked == 3 and report.problems == []


def test_an_edited_row_is_named(three_events):
    with session_scope() as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == 2).values(detail={"target": "someone-else"}))
    report = audit.verify()
    assert not report.ok
    assert "row 2 was edited after it was written" in report.problems


def test_a_deleted_middle_row_is_detected(three_events):
    with session_scope() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id == 2))
    report = audit.verify()
    assert not report.ok
    assert any("missing" in p for p in report.problems)


def test_a_deleted_newest_row_is_detected(three_events):
    with session_scope() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id == 3))
    assert not audit.verify().ok


def test_events_filter_newest_first(three_events):
    assert [e["id"] for e in audit.events(actor="admin")] == [2, 1]
    assert [e["actor"] for e in audit.events(outcome="failure")] == ["dr.a"]


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome"):
        audit.record("admin", "sign_in", "maybe")


def test_concurrent_writers_keep_one_unbroken_chain():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: audit.record(f"user{i}", "sign_in"), range(40)))
    report = audit.verify()
    assert report.ok and report.checked == 40
