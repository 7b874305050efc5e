"""Notes results out of MedUI: JSON, CSV that spreadsheets cannot execute, and a FHIR R4 Bundle.

FHIR mapping (one Bundle of type `collection` per export, with the Patient it is about):
- PROBLEM present / possible / absent → Condition, verificationStatus `confirmed` / `unconfirmed` / `refuted`,
  the best ICD-10-CM candidate as its coding, the entity text as code.text, where it was found as a note.
- PROBLEM family → FamilyMemberHistory (the relative named in the same sentence, else "family member"), not a
  Condition of this patient.
- PROBLEM hypothetical ("return if fever develops") → left out: it is no condition, confirmed or suspected.
- medication rows → MedicationStatement with the DrugBank/MeSH codes and dose, route and frequency as dosage text;
  status `not-taken` when the drug's entity is asserted absent ("not on aspirin"), else `active` (the rules do not
  tell a stopped drug from a current one).
fhir.resources ships R4B (4.3), whose Bundle, Condition, FamilyMemberHistory, MedicationStatement and Patient have
the same elements as R4 (4.0.1); resources are validated by building them with its models.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle

# Cells a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, -, @, and tab/CR that some
# programs strip before looking. Prefixing a quote makes them plain text in Excel, LibreOffice and Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ENTITY_COLUMNS = ("source", "patient", "start", "end", "text", "label", "assertion", "historical", "section",
                  "code_system", "code", "code_display", "code_score")
MEDICATION_COLUMNS = ("source", "patient", "medication", "generic", "dosage", "route", "frequency", "drugbank",
                      "mesh")

SYSTEMS = {  # code systems as FHIR names them
    "ICD-10-CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "DrugBank": "http://www.drugbank.ca",
    "MeSH": "http://www.nlm.nih.gov/research/umls/mesh",
}
VERIFICATION = {"present": "confirmed", "possible": "unconfirmed", "absent": "refuted"}
_VER_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
RELATIVES = {  # words in a note → HL7 v3 RoleCode
    "mother": ("MTH", "mother"), "mom": ("MTH", "mother"), "father": ("FTH", "father"), "dad": ("FTH", "father"),
    "sister": ("SIS", "sister"), "brother": ("BRO", "brother"), "son": ("SON", "natural son"),
    "daughter": ("DAU", "natural daughter"), "grandmother": ("GRMTH", "grandmother"),
    "grandfather": ("GRFTH", "grandfather"), "aunt": ("AUNT", "aunt"), "uncle": ("UNCLE", "uncle"),
    "cousin": ("COUSN", "cousin"), "sibling": ("SIB", "sibling"), "parent": ("PRN", "parent"),
    "parents": ("PRN", "parent"),
}
_RELATIVE_RE = re.compile(r"\b(" + "|".join(sorted(RELATIVES, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text rather than evaluating it."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: safe_cell(row.get(k)) for k in columns} for row in rows)
    return out.getvalue()


def _best(codes: list[dict[str, Any]]) -> dict[str, Any]:
    return codes[0] if codes else {}


def entities_csv(results: list[dict[str, Any]]) -> str:
    """One row per entity of every result, with its best code."""
    rows = []
    for result in results:
        for entity in result.get("entities", []):
            code = _best(entity.get("codes") or [])
            rows.append({**entity, "source": result.get("source"), "patient": result.get("patient"),
                         "code_system": code.get("system"), "code": code.get("code"),
                         "code_display": code.get("display"), "code_score": code.get("score")})
    return _csv(ENTITY_COLUMNS, rows)


def medication_row(med: dict[str, Any]) -> dict[str, Any]:
    """A medication row of a result (the entity dicts of the drug and its dose, route and frequency, and the
    normalised drug) as words and codes."""
    drug = med.get("code") or {}
    codes = [{"system": system, "code": drug[key], "display": drug.get("generic")}
             for system, key in (("DrugBank", "drugbank_id"), ("MeSH", "mesh_id")) if drug.get(key)]
    words = {k: (med.get(k) or {}).get("text") for k in ("medication", "dosage", "route", "frequency")}
    return {**words, "generic": drug.get("generic"), "codes": codes,
            "assertion": (med.get("medication") or {}).get("assertion")}


def medications_csv(results: list[dict[str, Any]]) -> str:
    """One row per medication: the drug as written, its generic name and codes, dose, route and frequency."""
    rows = []
    for result in results:
        for med in map(medication_row, result.get("medications", [])):
            codes = {c["system"]: c["code"] for c in med["codes"]}
            rows.append({**med, "source": result.get("source"), "patient": result.get("patient"),
                         "drugbank": codes.get("DrugBank"), "mesh": codes.get("MeSH")})
    return _csv(MEDICATION_COLUMNS, rows)


def to_json(results: list[dict[str, Any]]) -> str:
    """The results in the shape `python -m medui notes --json` prints (plus "patient"), without the note text."""
    return json.dumps([{k: v for k, v in r.items() if k != "text"} for r in results], ensure_ascii=False, indent=2)


def _uuid(*parts: Any) -> str:
    """A stable urn:uuid, so the same results always give the same Bundle."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "medui:" + json.dumps(parts, default=str)))


def _concept(text: str, codes: list[dict[str, Any]], top_only: bool) -> dict[str, Any]:
    """A CodeableConcept: the words of the note, and the code(s) MedUI chose for them."""
    chosen = codes[:1] if top_only else codes
    coding = [{"system": SYSTEMS.get(c["system"], c["system"]), "code": c["code"], "display": c.get("display")}
              for c in chosen if c.get("code")]
    return {"text": text, **({"coding": coding} if coding else {})}


def relative(text: str, start: int, end: int) -> tuple[str, str]:
    """The relative a family-history mention belongs to: the nearest relative word in the same sentence."""
    left = max(text.rfind(".", 0, start), text.rfind("\n", 0, start), text.rfind(";", 0, start)) + 1
    right = min((i for i in (text.find(".", end), text.find("\n", end), text.find(";", end)) if i >= 0),
                default=len(text))
    found = [(abs(m.start() - start), m.group(1).lower()) for m in _RELATIVE_RE.finditer(text, left, right)]
    return RELATIVES[min(found)[1]] if found else ("FAMMEMB", "family member")


def _provenance(result: dict[str, Any], entity: dict[str, Any]) -> str:
    model = result.get("model") or {}
    where = f"characters {entity['start']}-{entity['end']}" + (f", section {entity['section']}"
                                                                if entity.get("section") else "")
    historical = "; historical" if entity.get("historical") else ""
    return (f"Extracted by MedUI ({model.get('name')} v{model.get('version')}) from {result.get('source') or 'a note'}"
            f", {where}{historical}.")


def _resources(result: dict[str, Any], k: int, subject: dict[str, str]) -> list[tuple[str, dict]]:
    """The FHIR resources of the k-th result (k keeps their ids apart when two notes share a source name)."""
    source, text = (k, result.get("source")), result.get("text")
    resources = []
    for n, entity in enumerate(result.get("entities", [])):
        if entity.get("label") != "PROBLEM":
            continue
        note = [{"text": _provenance(result, entity)}]
        code = _concept(entity["text"], entity.get("codes") or [], top_only=True)
        if entity.get("assertion") == "family":
            role, display = relative(text, entity["start"], entity["end"]) if text else ("FAMMEMB", "family member")
            resources.append((_uuid(source, "family", n), {
                "resourceType": "FamilyMemberHistory", "status": "partial", "patient": subject,
                "relationship": {"coding": [{"system": _ROLE_SYSTEM, "code": role, "display": display}]},
                "condition": [{"code": code}], "note": note}))
        elif entity.get("assertion") in VERIFICATION:
            status = VERIFICATION[entity["assertion"]]
            resources.append((_uuid(source, "condition", n), {
                "resourceType": "Condition", "subject": subject, "code": code, "note": note,
                "verificationStatus": {"coding": [{"system": _VER_SYSTEM, "code": status}]}}))
    for n, med in enumerate(map(medication_row, result.get("medications", []))):
        dosage_text = " ".join(med[k] for k in ("dosage", "route", "frequency") if med[k])
        dosage = {"text": dosage_text, **({"route": {"text": med["route"]}} if med["route"] else {})}
        resources.append((_uuid(source, "medication", n), {
            "resourceType": "MedicationStatement", "subject": subject,
            "status": "not-taken" if med["assertion"] == "absent" else "active",
            "medicationCodeableConcept": _concept(med["medication"], med["codes"], top_only=False),
            **({"dosage": [dosage]} if dosage_text else {})}))
    return resources


def fhir_bundle(results: list[dict[str, Any]], patient: str) -> str:
    """A FHIR R4 collection Bundle (JSON) of one patient's notes results (with their "text", family mentions name
    the relative). Raises pydantic's ValidationError if a resource breaks the FHIR model: a bug, not a user error."""
    patient_url = _uuid("patient", patient)
    subject = {"reference": patient_url}
    entries = [{"fullUrl": patient_url, "resource": {
        "resourceType": "Patient", "identifier": [{"system": "urn:medui:patient", "value": patient}]}}]
    for k, result in enumerate(results):
        entries += [{"fullUrl": url, "resource": resource} for url, resource in _resources(result, k, subject)]
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
    return bundle.model_dump_json(indent=2)
