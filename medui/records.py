"""Patients and stored analyses: the generic record every capability saves its results into."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
    """Store one result and audit it; returns the analysis id."""
    with session_scope() as session:
        row = Analysis(kind=kind, patient_id=_patient_id(session, patient, created_by), input_hash=input_sha256,
                       model_name=model_name, model_version=model_version, result=result, created_by=created_by)
        session.add(row)
        session.flush()
        analysis_id = row.id
    audit.record(created_by, "analysis", patient=patient, kind=kind, analysis_id=analysis_id,
                 model=f"{model_name}:{model_version}" if model_name else None)
    return analysis_id


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
