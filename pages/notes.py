"""Notes: problems with assertion and ICD-10-CM codes, medications with dose, route and frequency, tests and
procedures, highlighted in the note; save, export, and correct the result so the model can be retrained."""

import hashlib

import pandas as pd
import streamlit as st

import medui.notes.samples  # noqa: F401  (registers the samples)
from medui import records
from medui.notes.documents import ACCEPTED, NotUtf8, from_paste, is_batch, read_upload
from medui.notes.extract import NotesError, check_text, iter_extract, load_model
from medui.registry import RegistryError
from medui.ui.notes_view import export_buttons, review_editor, show_result
from medui.ui.samples import sample_picker
from medui.ui.session import require_user
from medui.ui.text import markdown_safe
from medui.uploads import UploadRejected

user = require_user()
st.title("Notes")
st.caption("Entities, assertions and codes from clinical notes. The model was trained on synthetic notes: "
           "research use only, not for clinical decisions; check every result against the note.")

pasted = st.text_area("Paste a note", height=160, key="notes_text")
upload = st.file_uploader("…or upload a note (.txt, .docx, .pdf with a text layer) or a batch of notes (.csv or "
                          ".jsonl with a `text` column, optional `patient` and `source`)", type=list(ACCEPTED))
chosen = sample_picker("notes")
patient = st.text_input("Patient identifier (needed to save; a batch file's `patient` column overrides it)",
                        key="notes_patient").strip()

replace = st.session_state.get("notes_replace", False)
try:
    if upload:
        documents = read_upload(upload.getvalue(), upload.name, replace_errors=replace)
    elif chosen:
        documents = read_upload(chosen[1], chosen[0].filename, replace_errors=replace)
    elif pasted.strip():
        documents = [from_paste(pasted)]
    else:
        st.info("Paste a note, upload a file, or load a sample.")
        st.stop()
except NotUtf8 as exc:
    st.error(str(exc))
    st.checkbox("Read it anyway, showing undecodable bytes as �", key="notes_replace")
    st.stop()
except UploadRejected as exc:
    st.error(markdown_safe(str(exc)))
    st.stop()
if replace:
    st.checkbox("Read it anyway, showing undecodable bytes as �", key="notes_replace")
    if damaged := sum(d.text.count("\ufffd") for d in documents):
        st.warning(f"{damaged} character(s) could not be decoded and show as �: check the note before relying on it.")

name = upload.name if upload else chosen[0].filename if chosen else ""
batch = len(documents) > 1 or is_batch(name)
digest = hashlib.sha256()
for document in documents:  # one note at a time: a big batch is not copied into one string
    digest.update(repr((document.source, document.text, document.patient)).encode())
key = digest.hexdigest()
run = st.session_state.get("notes_run")
if not run or run["key"] != key:
    if not st.button(f"Analyse {len(documents):,} notes" if batch else "Analyse", type="primary"):
        st.stop()
    try:
        ner = load_model()
    except RegistryError as exc:
        st.error(f"The notes model is not available: {exc}")
        st.stop()
    results = [{"source": d.source, "error": d.error or check_text(d.text)} for d in documents]
    good = [i for i, d in enumerate(documents) if not results[i]["error"]]
    bar = st.progress(0.0, text=f"0 of {len(good):,} notes") if batch else None

    def progress(done: int) -> None:
        if bar:
            bar.progress(done / max(1, len(good)), text=f"{done:,} of {len(good):,} notes")

    try:
        with st.spinner("Reading the note…"):
            stream = iter_extract([documents[i].text for i in good], model=ner,
                                  sources=[documents[i].source for i in good], progress=progress)
            for i, result in zip(good, stream):
                results[i] = {**result, "text": documents[i].text, "patient": documents[i].patient}
    except NotesError as exc:
        st.error(str(exc))
        st.stop()
    run = st.session_state["notes_run"] = {"key": key, "results": results, "saved": {}}
results, saved = run["results"], run["saved"]


def owner(result: dict) -> str | None:
    """The patient a result belongs to: its batch row's, else the one entered above."""
    return result.get("patient") or patient or None


shown = 0
if batch:
    failed = sum("error" in r for r in results)
    st.subheader(f"{len(results):,} notes" + (f", {failed:,} not analysed" if failed else ""))
    st.dataframe(pd.DataFrame([{
        "Source": r["source"], "Patient": owner(r) or "", "Error": r.get("error") or "",
        "Problems": sum(e["label"] == "PROBLEM" for e in r.get("entities", [])),
        "Medications": len(r.get("medications", [])), "Saved as": saved.get(i, "")} for i, r in enumerate(results)]),
        hide_index=True)
    usable = [i for i, r in enumerate(results) if "error" not in r]
    if not usable:
        st.stop()
    shown = st.selectbox("Show note", usable, format_func=lambda i: f"{i + 1}. {results[i]['source']}")
result = results[shown]
if result.get("error"):
    st.error(markdown_safe(f"{result['source']}: {result['error']}"))
    st.stop()

analysis_id = saved.get(shown)
entities = result["entities"]
if analysis_id:
    from medui.notes.corrections import reviewed

    entities = reviewed(analysis_id)
show_result(result, entities, key="notes")

st.subheader("Save and export")
unsaved = [i for i, r in enumerate(results) if "error" not in r and i not in saved]
if unsaved and st.button(f"Save {len(unsaved):,} notes to the record" if batch else "Save to the record",
                         type="primary"):
    missing = sum(not owner(results[i]) for i in unsaved)
    if missing:
        st.error(f"Enter a patient identifier first ({missing:,} note(s) name no patient).")
    else:
        try:
            for i in unsaved:
                results[i]["patient"] = owner(results[i])
                saved[i] = records.save_analysis(
                    "notes", results[i], created_by=user.username, patient=results[i]["patient"],
                    input_sha256=records.input_hash(results[i]["text"].encode("utf-8")),
                    model_name=results[i]["model"]["name"], model_version=results[i]["model"]["version"])
        except ValueError as exc:  # a batch row's patient identifier the record refuses
            st.error(markdown_safe(str(exc)))
        else:
            st.rerun()
if analysis_id:
    st.success(markdown_safe(f"Saved as analysis {analysis_id} for {result['patient']}; find it again on the "
                             "Records page."))
export_buttons([{**r, "patient": owner(r)} for r in (results if batch else [result])], owner(result), user,
               key="notes_export")

if analysis_id:
    review_editor(analysis_id, result["text"], entities, user)
else:
    st.caption("Save the analysis to review and correct it: corrections are stored with the saved analysis.")
