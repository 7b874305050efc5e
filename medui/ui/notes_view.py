"""Streamlit pieces of the Notes and Records pages: the highlighted note, entity and medication tables, the review
editor, and the export buttons."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd
import streamlit as st

from medui import audit
from medui.auth import UserInfo
from medui.notes import corrections, export
from medui.notes.corrections import ASSERTIONS, STATUSES, CorrectionError

LABEL_COLOURS = {  # light fills that keep dark text readable; one per entity label
    "PROBLEM": "#fde2e1", "MEDICATION": "#dbeafe", "DOSAGE": "#cffafe", "ROUTE": "#ede9fe",
    "FREQUENCY": "#fae8ff", "TEST": "#dcfce7", "PROCEDURE": "#fef3c7",
}
BADGE_COLOURS = {"present": "#15803d", "absent": "#6b7280", "possible": "#b45309", "hypothetical": "#7c3aed",
                 "family": "#0e7490"}


def _mark(text: str, entity: dict[str, Any]) -> str:
    label, assertion = entity["label"], entity.get("assertion")
    colour = LABEL_COLOURS.get(label, "#e5e7eb")
    badge = (f'<span style="background:{BADGE_COLOURS.get(assertion, "#374151")};color:#fff;border-radius:4px;'
             f'padding:0 4px;margin-left:2px;font-size:0.7em">{escape(assertion)}</span>') if assertion else ""
    strike = "text-decoration:line-through;" if assertion == "absent" else ""
    return (f'<mark style="background:{colour};{strike}border-radius:3px;padding:0 2px" title="{escape(label)}">'
            f'{escape(text[entity["start"]:entity["end"]])}<sub style="font-size:0.6em;margin-left:2px">'
            f'{escape(label)}</sub></mark>{badge}')


def highlight_html(text: str, entities: list[dict[str, Any]]) -> str:
    """The note with its entities marked: every piece of the note is HTML-escaped, only MedUI's own tags are HTML.

    Rejected entities are not marked; where two overlap, the one starting first is marked.
    """
    parts, position = [], 0
    for entity in sorted(entities, key=lambda e: (e["start"], -e["end"])):
        if entity.get("status") == "rejected" or entity["start"] < position:
            continue
        parts += [escape(text[position:entity["start"]]), _mark(text, entity)]
        position = entity["end"]
    parts.append(escape(text[position:]))
    return ('<div style="white-space:pre-wrap;line-height:2;font-family:ui-monospace,monospace;font-size:0.9em;'
            'border:1px solid #e5e7eb;border-radius:6px;padding:8px">' + "".join(parts) + "</div>")


def legend_html() -> str:
    return " ".join(f'<mark style="background:{c};border-radius:3px;padding:0 4px">{label}</mark>'
                    for label, c in LABEL_COLOURS.items())


def entity_rows(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entity table: one row per entity, best code first."""
    rows = []
    for e in entities:
        best = (e.get("codes") or [{}])[0]
        rows.append({"Text": e["text"], "Label": e["label"], "Assertion": e.get("assertion") or "",
                     "Historical": bool(e.get("historical")), "Section": e.get("section") or "",
                     "Code": best.get("code") or "", "Code name": best.get("display") or "",
                     "Score": best.get("score"), "Review": e.get("status", ""), "Start": e["start"], "End": e["end"]})
    return rows


def medication_rows(medications: list[dict[str, Any]], rejected: set[tuple[int, int]]) -> list[dict[str, Any]]:
    """The medication table; rows whose drug a clinician rejected are left out."""
    rows = []
    for med in medications:
        drug = med.get("medication") or {}
        if (drug.get("start"), drug.get("end")) in rejected:
            continue
        row = export.medication_row(med)
        rows.append({"Drug": row["medication"] or "", "Generic name": row["generic"] or "",
                     "Dose": row["dosage"] or "", "Route": row["route"] or "", "Frequency": row["frequency"] or "",
                     "Code": ", ".join(f"{c['system']} {c['code']}" for c in row["codes"])})
    return rows


def show_result(result: dict[str, Any], entities: list[dict[str, Any]], key: str) -> None:
    """One note's result: coverage, the highlighted text, the filtered entity table and the medication rows."""
    model = result.get("model") or {}
    st.caption(f"Model {model.get('name')} v{model.get('version')} · {result.get('chars_processed', 0):,} of "
               f"{result.get('chars_total', 0):,} characters processed · vocabularies: "
               + ", ".join(f"{k} {v}" for k, v in (result.get("vocabularies") or {}).items()))
    if result.get("chars_processed", 0) < result.get("chars_total", 0):
        st.warning("Part of this note was not processed; the entities cover only the processed part.")
    st.html(legend_html())
    st.html(highlight_html(result.get("text", ""), entities))

    st.subheader("Entities")
    left, right = st.columns(2)
    labels = left.multiselect("Label", sorted({e["label"] for e in entities}), key=f"{key}_labels")
    assertions = right.multiselect("Assertion", [a for a in ASSERTIONS if any(e.get("assertion") == a
                                                                              for e in entities)],
                                   key=f"{key}_assertions")
    shown = [e for e in entities if (not labels or e["label"] in labels)
             and (not assertions or e.get("assertion") in assertions)]
    if shown:
        st.dataframe(pd.DataFrame(entity_rows(shown)), hide_index=True, key=f"{key}_entities")
    else:
        st.info("No entity matches these filters." if entities else "No entities were found in this note.")
    st.subheader("Medications")
    rejected = {(e["start"], e["end"]) for e in entities if e.get("status") == "rejected"}
    if medications := medication_rows(result.get("medications", []), rejected):
        st.dataframe(pd.DataFrame(medications), hide_index=True, key=f"{key}_meds")
    else:
        st.caption("No medications were found in this note.")


def export_buttons(results: list[dict[str, Any]], patient: str | None, user: UserInfo, key: str) -> None:
    """JSON, entity and medication CSV of all `results`; a FHIR R4 Bundle of those that belong to `patient`.

    Each download is audited (format and count; the patient only for the single-patient Bundle).
    """
    usable = [r for r in results if "error" not in r]
    own = [r for r in usable if r.get("patient") == patient]
    files = [("JSON", export.to_json(results), "notes.json", "application/json", "json", len(results), None),
             ("Entities (CSV)", export.entities_csv(usable), "notes-entities.csv", "text/csv", "entities_csv",
              len(usable), None),
             ("Medications (CSV)", export.medications_csv(usable), "notes-medications.csv", "text/csv",
              "medications_csv", len(usable), None),
             ("FHIR R4 Bundle", export.fhir_bundle(own, patient) if patient else "", "notes-fhir-bundle.json",
              "application/fhir+json", "fhir", len(own), patient)]
    for column, (label, data, name, mime, kind, count, who) in zip(st.columns(len(files)), files):
        column.download_button(label, data, file_name=name, mime=mime, key=f"{key}_{kind}", disabled=not data,
                               on_click=audit.record, args=(user.username, "notes_export"),
                               kwargs={"patient": who, "format": kind, "notes": count},
                               help=None if data else "A FHIR Bundle is about one patient: enter the identifier")


def review_editor(analysis_id: int, text: str, entities: list[dict[str, Any]], user: UserInfo) -> None:
    """Accept, reject, relabel, fix a span or an assertion, or add a missed entity; saved as annotations."""
    from medui.notes.extract import LABELS

    st.subheader("Review and correct")
    st.caption("Set Review to accepted or rejected, change a label, an assertion or a span (start/end are character "
               "positions; the text follows), or add a row for an entity the model missed. Corrections are stored "
               "with this analysis, audited, and can be exported to retrain the model.")
    table = pd.DataFrame([{"index": e["index"], "status": e["status"], "text": e["text"], "label": e["label"],
                           "assertion": e.get("assertion"), "start": e["start"], "end": e["end"]} for e in entities],
                         columns=["index", "status", "text", "label", "assertion", "start", "end"])
    edited = st.data_editor(
        table, key=f"notes_review_{analysis_id}", num_rows="dynamic", hide_index=True,
        column_config={
            "index": st.column_config.NumberColumn("#", disabled=True),
            "status": st.column_config.SelectboxColumn("Review", options=list(STATUSES), default="added"),
            "text": st.column_config.TextColumn("Text", disabled=True),
            "label": st.column_config.SelectboxColumn("Label", options=list(LABELS), required=True),
            "assertion": st.column_config.SelectboxColumn("Assertion", options=list(ASSERTIONS)),
            "start": st.column_config.NumberColumn("Start", min_value=0, max_value=len(text), step=1, required=True),
            "end": st.column_config.NumberColumn("End", min_value=1, max_value=len(text), step=1, required=True),
        })
    if st.button("Save corrections", key=f"notes_review_save_{analysis_id}"):
        try:
            counts = corrections.save_review(analysis_id, edited.to_dict("records"), actor=user.username)
        except CorrectionError as exc:
            st.error(str(exc))
            return
        done = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
        st.session_state["notes_review_saved"] = f"Saved: {done}." if done else "Nothing changed."
        del st.session_state[f"notes_review_{analysis_id}"]  # show the stored state, not the edits
        st.rerun()
    if message := st.session_state.pop("notes_review_saved", None):
        st.success(message)
