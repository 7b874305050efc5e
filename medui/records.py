"""Patients and stored analyses: the generic record every capability saves its results into."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select

from medui import audit
from medui.store import session_scope
from medui.store.models import Analysis, Patient

MAX_IDENTIFIER_LENGTH = 128


@dataclass(frozen=True)
class AnalysisRecord:
    id: int
    kind: str
    patient: str | None
    model: str | None
    created_by: str
    created_at: str
    result: dict[str, Any]


def input_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _patient_id(session, identifier: str | None, actor: str) -> int | None:
    """The row for a clinician-chosen patient identifier (not necessarily an MRN), created on first use."""
    if identifier is None:
        return None
    identifier = identifier.strip()
    if not identifier or len(identifier) > MAX_IDENTIFIER_LENGTH or not identifier.isprintable():
        raise ValueError(f"A patient identifier must be 1-{MAX_IDENTIFIER_LENGTH} printable characters.")
    patient = session.scalars(select(Patient).where(Patient.identifier == identifier)).first()
    if patient is None:
        patient = Patient(identifier=identifier, created_by=actor)
        session.add(patient)
        session.flush()
    return patient.id


def save_analysis(kind: str, result: dict[str, Any], *, created_by: str, input_sha256: str,
                  patient: str | None = None, model_name: str | None = None, model_version: str | None = None) -> int:
    """Store one result and its audit event in one transaction (a crash keeps both or neither); returns the
    analysis id. A batch is saved one call per analysis, as the Notes page does: each saved note stays saved
    whatever happens to the notes after it."""
    with session_scope() as session:
        row = Analysis(kind=kind, patient_id=_patient_id(session, patient, created_by), input_hash=input_sha256,
                       model_name=model_name, model_version=model_version, result=result, created_by=created_by)
        session.add(row)
        session.flush()
        audit.append(session, created_by, "analysis", patient=patient, kind=kind, analysis_id=row.id,
                     model=f"{model_name}:{model_version}" if model_name else None)
        return row.id


def _records(*conditions, limit: int) -> list[AnalysisRecord]:
    """Newest first, with the patient's identifier."""
    query = (select(Analysis, Patient.identifier).outerjoin(Patient, Analysis.patient_id == Patient.id)
             .where(*conditions).order_by(Analysis.id.desc()).limit(limit))
    with session_scope() as session:
        return [
            AnalysisRecord(id=a.id, kind=a.kind, patient=identifier,
                           model=f"{a.model_name} v{a.model_version}" if a.model_name else None,
                           created_by=a.created_by, created_at=f"{a.created_at:%Y-%m-%d %H:%M}", result=a.result)
            for a, identifier in session.execute(query)
        ]


def recent_analyses(created_by: str, limit: int = 20) -> list[AnalysisRecord]:
    """A user's own newest analyses."""
    return _records(Analysis.created_by == created_by, limit=limit)


def latest_for_patient(patient: str, kind: str) -> AnalysisRecord | None:
    """The newest stored analysis of one kind for a patient, e.g. to pre-fill a form with known values."""
    found = _records(Patient.identifier == patient.strip(), Analysis.kind == kind, limit=1)
    return found[0] if found else None


def get_analysis(analysis_id: int) -> AnalysisRecord | None:
    """One stored analysis by id, or None."""
    if not 0 < analysis_id < 2**31:  # ids are 32-bit; PostgreSQL refuses a larger one (a typed ?analysis= link)
        return None
    found = _records(Analysis.id == analysis_id, limit=1)
    return found[0] if found else None


@dataclass(frozen=True)
class EntityHit:
    """One entity of a stored notes analysis that matched a search (as reviewed by clinicians, if they did)."""

    analysis_id: int
    patient: str | None
    created_at: str
    created_by: str
    source: str | None
    text: str
    label: str
    assertion: str | None
    code: str | None
    code_display: str | None
    section: str | None
    status: str


def _matches(entity: dict[str, Any], words: str, labels: set[str], assertions: set[str]) -> bool:
    if entity["status"] == "rejected" or (labels and entity["label"] not in labels):
        return False
    if assertions and entity.get("assertion") not in assertions:
        return False
    best = (entity.get("codes") or [{}])[0]
    haystack = " ".join(str(v) for v in (entity["text"], best.get("code"), best.get("display")) if v)
    return words in haystack.lower()


def search_notes(*, words: str = "", labels: tuple[str, ...] = (), assertions: tuple[str, ...] = (),
                 patient: str = "", since: date | None = None, until: date | None = None,
                 limit: int = 1000) -> list[EntityHit]:
    """Entities of stored notes analyses, newest analysis first: `words` is a case-insensitive part of the entity's
    text or of its best code or code name ("metformin", "E11"); labels, assertions, patient and dates (inclusive)
    narrow it. Every clinician of this MedUI (one hospital) may search every stored note; each search is audited
    by the caller."""
    from medui.notes.corrections import effective, load_annotations

    conditions = [Analysis.kind == "notes"]
    if patient.strip():
        conditions.append(Patient.identifier == patient.strip())
    if since:
        conditions.append(Analysis.created_at >= datetime.combine(since, time.min, timezone.utc))
    if until:
        conditions.append(Analysis.created_at < datetime.combine(until + timedelta(days=1), time.min, timezone.utc))
    query = (select(Analysis, Patient.identifier).outerjoin(Patient, Analysis.patient_id == Patient.id)
             .where(*conditions).order_by(Analysis.id.desc()))
    hits: list[EntityHit] = []
    words, wanted_labels, wanted_assertions = words.strip().lower(), set(labels), set(assertions)
    with session_scope() as session:
        rows = session.execute(query.execution_options(yield_per=200))
        for batch in rows.partitions():  # a few hundred notes at a time, with their annotations
            history = load_annotations(session, [a.id for a, _ in batch])
            for analysis, identifier in batch:
                for entity in effective(analysis.result.get("entities", []), history[analysis.id]):
                    if not _matches(entity, words, wanted_labels, wanted_assertions):
                        continue
                    best = (entity.get("codes") or [{}])[0]
                    hits.append(EntityHit(
                        analysis.id, identifier, f"{analysis.created_at:%Y-%m-%d %H:%M}", analysis.created_by,
                        analysis.result.get("source"), entity["text"], entity["label"], entity.get("assertion"),
                        best.get("code"), best.get("display"), entity.get("section"), entity["status"]))
                    if len(hits) == limit:
                        return hits
    return hits
