"""Medication rows: each MEDICATION entity with its DOSAGE, ROUTE and FREQUENCY and its normalised drug.

An attribute belongs to the nearest medication before it in the same sentence or line ("metformin 500 mg PO
BID", "lisinopril 10 mg daily and ASA 81 mg"); when no medication precedes it there, to the next one ("40 mg IV
furosemide"). Entities are the pipeline's dicts: {"start", "end", "text", "label", ...}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medui.notes.drugs import Drug, normalise_drug

ATTRIBUTES = {"DOSAGE": "dosage", "ROUTE": "route", "FREQUENCY": "frequency"}
# A line break, a semicolon, or a full stop before a new sentence ("BID. Lisinopril"), not "p.o. b.i.d.".
_BOUNDARY = re.compile(r"\n|;|\.\s+(?=[A-Z])")

Entity = dict[str, Any]


@dataclass
class MedicationRow:
    """One medication with its attributes (the entity dicts themselves, or None) and its normalised drug."""

    medication: Entity
    dosage: Entity | None = None
    route: Entity | None = None
    frequency: Entity | None = None
    code: Drug | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the entities as given, `code` as {"generic", "drugbank_id", "mesh_id", "matched"}."""
        code = None if self.code is None else {"generic": self.code.generic, "drugbank_id": self.code.drugbank_id,
                                               "mesh_id": self.code.mesh_id, "matched": self.code.matched}
        return {"medication": self.medication, "dosage": self.dosage, "route": self.route,
                "frequency": self.frequency, "code": code}


@lru_cache(maxsize=4096)
def _drug(text: str) -> Drug | None:
    return normalise_drug(text)


def _same_segment(text: str, a: Entity, b: Entity) -> bool:
    first, second = (a, b) if a["start"] <= b["start"] else (b, a)
    # One character past the gap, so the boundary's look-ahead sees the capital that starts the next sentence.
    return not _BOUNDARY.search(text, first["end"], max(first["end"], second["start"] + 1))


def link_medications(text: str, entities: list[Entity]) -> list[MedicationRow]:
    """Medication rows in text order. An attribute no medication can take is left out: a row keeps one attribute
    of each kind."""
    ordered = sorted(entities, key=lambda e: (e["start"], e["end"]))
    rows = [MedicationRow(e, code=_drug(e["text"])) for e in ordered if e["label"] == "MEDICATION"]
    for entity in ordered:
        field = ATTRIBUTES.get(entity["label"])
        if field is None:
            continue
        before = [r for r in rows if r.medication["end"] <= entity["start"] and _same_segment(text, r.medication, entity)]
        after = [r for r in rows if r.medication["start"] >= entity["end"] and _same_segment(text, entity, r.medication)]
        # The nearest medication before it, else (or when that one already has this attribute) the next one.
        for owner in before[-1:] + after[:1]:
            if getattr(owner, field) is None:
                setattr(owner, field, entity)
                break
    return rows
