"""The append-only audit trail: every row carries the hash of the row before it, so edits and deletions show."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medui.store import session_scope
from medui.store.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
OUTCOMES = ("success", "failure", "refused")
MAX_PATIENT_LENGTH = AuditEvent.patient.type.length


def _timestamp(moment: datetime) -> str:
    """UTC without offset: SQLite gives naive datetimes back, PostgreSQL aware ones; both must hash alike."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def _row_hash(seq: int, created_at: datetime, actor: str, action: str, outcome: str,
              patient: str | None, detail: dict, prev_hash: str) -> str:
    payload = json.dumps(
        [seq, _timestamp(created_at), actor, action, outcome, patient, detail, prev_hash],
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record(actor: str, action: str, outcome: str = "success", patient: str | None = None,
           **detail: Any) -> None:
    """Append one event in its own transaction, so it is kept even when the caller's work fails.

    `detail` holds identifiers and counts only, never note text or other PHI.
    """
    with session_scope() as session:
        append(session, actor, action, outcome, patient, **detail)


def append(session: Session, actor: str, action: str, outcome: str = "success", patient: str | None = None,
           **detail: Any) -> None:
    """Append one event inside the caller's transaction: it commits with the work it describes, or not at all
    (a stored analysis is never left without its audit event by a crash between two commits)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    detail = json.loads(json.dumps(detail, default=str))
    if patient:  # an identifier read from a file (DICOM PatientID) may exceed the column or hold NUL (PostgreSQL refuses)
        patient = patient.replace("\x00", "")[:MAX_PATIENT_LENGTH]
    # The row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serialises writers on the chain's head.
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    seq = head.count + 1
    now = datetime.now(timezone.utc)
    row_hash = _row_hash(seq, now, actor, action, outcome, patient, detail, head.last_hash)
    session.add(AuditEvent(id=seq, created_at=now, actor=actor, action=action, outcome=outcome,
                           patient=patient, detail=detail, prev_hash=head.last_hash, row_hash=row_hash))
    head.last_hash, head.count = row_hash, seq


@dataclass
class ChainReport:
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)


def verify() -> ChainReport:
    """Recompute the chain from the first row; name each row that was edited, deleted or inserted."""
    problems: list[str] = []
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    with session_scope() as session:
        head = session.get(AuditHead, 1)
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
            checked += 1
            if event.id != expected_seq:
                problems.append(f"rows {expected_seq}..{event.id - 1} are missing (deleted)")
            if event.prev_hash != expected_prev:
                problems.append(f"row {event.id} does not follow the row before it")
            recomputed = _row_hash(event.id, event.created_at, event.actor, event.action, event.outcome,
                                   event.patient, event.detail, event.prev_hash)
            if recomputed != event.row_hash:
                problems.append(f"row {event.id} was edited after it was written")
            expected_prev, expected_seq = event.row_hash, event.id + 1
        head_count, head_hash = (head.count, head.last_hash) if head else (0, GENESIS_HASH)
    if head_count != expected_seq - 1 or head_hash != expected_prev:
        problems.append(f"the chain should end at row {head_count}; rows after {expected_seq - 1} are missing")
    return ChainReport(ok=not problems, checked=checked, problems=problems)


def events(actor: str | None = None, action: str | None = None, outcome: str | None = None,
           since: datetime | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The newest events first, filtered."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    with session_scope() as session:
        return [
            {"id": e.id, "time": _timestamp(e.created_at) + "Z", "actor": e.actor, "action": e.action,
             "outcome": e.outcome, "patient": e.patient, "detail": e.detail}
            for e in session.scalars(query)
        ]
