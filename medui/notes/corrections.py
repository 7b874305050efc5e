"""Clinicians' corrections of a stored notes analysis, kept as annotations, and exported as fine-tuning data.

Each change (accept, reject, correct a label/span/assertion, add an entity the model missed) is one row in the
`annotations` table; the stored result itself never changes, and the newest annotation of an entity is in force.
Exported notes are the reviewed ones (at least one annotation): their entities as corrected, rejected ones left
out, unreviewed ones kept as the model found them (the clinician saw them and let them stand), in the span JSONL
that the `ner` training task reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medui import audit
from medui.auth import require_role
from medui.notes.assertion import VALUES as ASSERTIONS
from medui.store import session_scope
from medui.store.models import Analysis, Annotation, Patient

STATUSES = ("unreviewed", "accepted", "rejected", "corrected", "added")
ASSERTED = ("PROBLEM", "MEDICATION")  # the labels the extractor gives an assertion ("not on aspirin")
EDITABLE = ("label", "assertion", "start", "end")


class CorrectionError(ValueError):
    """A correction that cannot be stored, with a message to show as it is."""


def _apply(rows: list[dict[str, Any]], annotations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reviewed rows (with `index` and `status`) after some more annotations, in index order."""
    by_index = {row["index"]: dict(row) for row in rows}
    for note in annotations:
        i, action = note["entity_index"], note["action"]
        if action == "add":
            by_index[i] = {"codes": [], "historical": None, "section": None, **note["entity"], "index": i,
                           "status": "added"}
        elif i not in by_index:
            continue  # cannot happen through save_review; skip rather than invent an entity
        elif action == "correct":
            moved = any(by_index[i].get(k) != note["entity"].get(k) for k in ("start", "end", "label"))
            by_index[i] = {**by_index[i], **note["entity"], "status": "corrected",
                           **({"codes": []} if moved else {})}  # the model's codes were for the old words
        else:
            by_index[i]["status"] = "accepted" if action == "accept" else "rejected"
    return [by_index[i] for i in sorted(by_index)]


def effective(entities: list[dict[str, Any]], annotations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model's entities as reviewed so far, each with its `index` and `status` (annotations oldest first)."""
    return _apply([{**e, "index": i, "status": "unreviewed"} for i, e in enumerate(entities)], annotations)


def load_annotations(session: Session, analysis_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Every annotation of these analyses, oldest first, read in the caller's transaction."""
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in analysis_ids}
    query = select(Annotation).where(Annotation.analysis_id.in_(analysis_ids)).order_by(Annotation.id)
    for a in session.scalars(query):
        found[a.analysis_id].append({"entity_index": a.entity_index, "action": a.action, "entity": a.entity,
                                     "created_by": a.created_by, "created_at": f"{a.created_at:%Y-%m-%d %H:%M}"})
    return found


def _load(session, analysis_id: int) -> tuple[Analysis, str | None]:
    row = session.execute(select(Analysis, Patient.identifier).outerjoin(Patient, Analysis.patient_id == Patient.id)
                          .where(Analysis.id == analysis_id, Analysis.kind == "notes")).first()
    if row is None:
        raise CorrectionError(f"There is no stored notes analysis {analysis_id}.")
    return row[0], row[1]


def reviewed(analysis_id: int) -> list[dict[str, Any]]:
    """The entities of a stored notes analysis as reviewed so far."""
    with session_scope() as session:
        analysis, _ = _load(session, analysis_id)
        return effective(analysis.result.get("entities", []), load_annotations(session, [analysis_id])[analysis_id])


def _whole(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise CorrectionError(f"{what} must be a whole number, got {value!r}.")


def _clean(row: dict[str, Any], text: str, labels: tuple[str, ...]) -> dict[str, Any]:
    """An edited or added entity checked against the note: a known label, a valid assertion, a span with words."""
    start, end = _whole(row.get("start"), "Start"), _whole(row.get("end"), "End")
    where = f"Entity {start}-{end}"
    if row.get("label") not in labels:
        raise CorrectionError(f"{where}: the label must be one of {', '.join(labels)}, got {row.get('label')!r}.")
    if not 0 <= start < end <= len(text):
        raise CorrectionError(f"{where}: a span must start before it ends, within the note's {len(text)} characters.")
    if not text[start:end].strip():
        raise CorrectionError(f"{where}: the span covers only blank space.")
    assertion = None
    if row["label"] in ASSERTED:
        assertion = row.get("assertion") or "present"
        if assertion not in ASSERTIONS:
            raise CorrectionError(f"{where}: the assertion must be one of {', '.join(ASSERTIONS)}, got {assertion!r}.")
    return {"start": start, "end": end, "text": text[start:end], "label": row["label"], "assertion": assertion}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def changes(current: list[dict[str, Any]], edited: list[dict[str, Any]], text: str,
            labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """The annotations that turn `current` (from `reviewed`) into the `edited` rows of the review table.

    A row without an index is an added entity; a current row missing from `edited` was deleted, i.e. rejected.
    """
    by_index = {row["index"]: row for row in current}
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    next_index = max(by_index, default=-1) + 1
    for row in edited:
        if _missing(row.get("index")):
            if row.get("status") != "rejected":
                found.append({"entity_index": next_index, "action": "add", "entity": _clean(row, text, labels)})
                next_index += 1
            continue
        index = _whole(row["index"], "Index")
        if index not in by_index:
            raise CorrectionError(f"There is no entity {index} in this note.")
        seen.add(index)
        now = by_index[index]
        if row.get("status") == "rejected":
            if now["status"] != "rejected":
                found.append({"entity_index": index, "action": "reject", "entity": None})
            continue
        wanted = {k: None if _missing(row.get(k)) else row.get(k) for k in EDITABLE}
        if wanted["label"] not in ASSERTED:
            wanted["assertion"] = None
        if any(wanted[k] != now.get(k) for k in EDITABLE):
            found.append({"entity_index": index, "action": "correct", "entity": _clean(wanted, text, labels)})
        elif now["status"] == "rejected" or (row.get("status") == "accepted" and now["status"] == "unreviewed"):
            found.append({"entity_index": index, "action": "accept", "entity": None})
    found += [{"entity_index": i, "action": "reject", "entity": None}
              for i, row in by_index.items() if i not in seen and row["status"] != "rejected"]
    _check_overlaps(current, found)
    return found


def _check_overlaps(current: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
    """Training data cannot hold nested entities, so a correction may not make two kept entities overlap."""
    kept = sorted((e for e in _apply(current, found) if e["status"] != "rejected"), key=lambda e: (e["start"], e["end"]))
    for a, b in pairwise(kept):
        if b["start"] < a["end"]:
            raise CorrectionError(f"\"{a['text']}\" ({a['start']}-{a['end']}) and \"{b['text']}\" "
                                  f"({b['start']}-{b['end']}) overlap: reject or shorten one of them.")


def save_review(analysis_id: int, edited: list[dict[str, Any]], *, actor: str) -> dict[str, int]:
    """Store the changes a clinician made in the review table as annotations and audit them, in one transaction
    (a crash keeps both or neither); counts per action."""
    from medui.notes.extract import LABELS

    with session_scope() as session:
        analysis, patient = _load(session, analysis_id)
        current = effective(analysis.result.get("entities", []), load_annotations(session, [analysis_id])[analysis_id])
        found = changes(current, edited, analysis.result.get("text", ""), LABELS)
        session.add_all(Annotation(analysis_id=analysis_id, created_by=actor, **a) for a in found)
        counts = {action: sum(a["action"] == action for a in found)
                  for action in ("accept", "reject", "correct", "add")}
        if found:
            audit.append(session, actor, "annotation", patient=patient, analysis_id=analysis_id, **counts)
    return counts


def training_rows() -> Iterator[dict[str, Any]]:
    """Each reviewed note as {"text", "entities": [{"start", "end", "label"(, "assertion")}]}, oldest first; the
    `ner` task reads start, end and label, the assertion is there for an assertion model."""
    with session_scope() as session:
        ids = list(session.scalars(select(Annotation.analysis_id).distinct().order_by(Annotation.analysis_id)))
    for start in range(0, len(ids), 100):  # a hundred notes at a time: memory stays bounded
        chunk = ids[start:start + 100]
        with session_scope() as session:
            notes = session.scalars(select(Analysis).where(Analysis.id.in_(chunk)).order_by(Analysis.id)).all()
            history = load_annotations(session, chunk)
        for analysis in notes:
            kept = [e for e in effective(analysis.result.get("entities", []), history[analysis.id])
                    if e["status"] != "rejected"]
            yield {"text": analysis.result.get("text", ""), "entities": [
                {"start": e["start"], "end": e["end"], "label": e["label"],
                 **({"assertion": e["assertion"]} if e.get("assertion") else {})}
                for e in sorted(kept, key=lambda e: e["start"])]}


def training_jsonl(actor: str) -> tuple[str, int]:
    """The reviewed notes as fine-tuning JSONL (task `ner`) and how many there are; the export is audited."""
    require_role(actor, "admin", "annotations_export")
    rows = [json.dumps(row, ensure_ascii=False) for row in training_rows()]
    audit.record(actor, "annotations_export", notes=len(rows))
    return "".join(line + "\n" for line in rows), len(rows)
