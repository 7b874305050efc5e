"""Imaging: DICOM files or a ZIP of a series → viewer with windowing, findings, attribution overlay and trust panel,
masked metadata, save and export."""

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st
from PIL import Image

import medui.imaging.samples  # noqa: F401 -- registers this page's samples
from medui import audit
from medui.imaging import (
    PRESETS,
    Deidentifier,
    ImageRefused,
    burned_in_warning,
    decode,
    metadata_table,
    render,
    reveal_metadata,
)
from medui.imaging.analysis import NOT_FOR_CLINICAL_USE
from medui.imaging.classify import load_classifier
from medui.registry import RegistryError
from medui.ui.imaging_view import analysis_section, load
from medui.ui.samples import sample_picker
from medui.ui.session import require_user
from medui.ui.text import markdown_safe

user = require_user()
st.title("Imaging")
st.caption("DICOM viewer, chest-radiograph findings with where the model looked, and de-identified export "
           "(PS3.15 Annex E Basic Profile). " + NOT_FOR_CLINICAL_USE)

uploads = st.file_uploader("DICOM files, or a ZIP of a series (checked by content, not by name)",
                           accept_multiple_files=True, key="imaging_upload")
chosen = sample_picker("imaging")
if uploads:
    items = [(u.name, u.getvalue()) for u in uploads]
elif chosen:
    items = [(chosen[0].filename, chosen[1])]
else:
    st.info("Upload DICOM files or a ZIP, or load a sample, to begin.")
    st.stop()

digest = hashlib.sha256()
for name, data in items:
    digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
if st.session_state.get("imaging_loaded", (None,))[0] != digest.hexdigest():
    with st.spinner("Reading the files…"):
        st.session_state["imaging_loaded"] = (digest.hexdigest(), *load(items))
upload, studies, refused, boxes = st.session_state["imaging_loaded"]
for name, message in refused:
    st.warning(f"{markdown_safe(name)}: {markdown_safe(message)}")
if not studies:
    st.error("None of the files could be displayed.")
    st.stop()

study = studies[st.selectbox("Study", range(len(studies)), key="imaging_study", format_func=lambda i: (
    f"{studies[i].date or 'no date'} · {studies[i].description or 'no description'} · {len(studies[i].series)} series"))]
series = study.series[st.selectbox("Series", range(len(study.series)), key="imaging_series", format_func=lambda i: (
    f"{study.series[i].modality} · {study.series[i].description or 'no description'} · "
    f"{len(study.series[i].instances)} instance(s)"))]
slices = series.slices()
position = 0
if len(slices) > 1:
    position = st.slider(f"Slice / frame (ordered by {series.ordered_by})", 1, len(slices), 1,
                         key=f"imaging_slice_{series.uid}") - 1
instance, frame = slices[min(position, len(slices) - 1)]
ds = instance.dataset

left, right = st.columns([2, 1])
preset = left.selectbox("Window", ["header", "auto", *PRESETS], key="imaging_window",
                        help="header: the file's own window (auto if it has none); auto: 1st–99th percentile; "
                             "lung … abdomen: CT windows in Hounsfield units.")
window = preset
if right.checkbox("Custom centre/width", key="imaging_custom"):
    centre = right.number_input("Centre", value=40.0, key="imaging_centre")
    width = right.number_input("Width", min_value=1.0, value=400.0, key="imaging_width")
    window = (centre, width)

shown = None
try:
    decoded = decode(ds, frame)
    shown = render(ds, decoded, window, frame=frame)
except ImageRefused as exc:
    st.error(markdown_safe(str(exc)))
if shown is not None:
    used = shown.window
    centre_width = ("VOI LUT / none" if used.get("center") is None
                    else f"C {used['center']:g} / W {used['width']:g}")
    caption = (f"{ds.get('Modality') or '?'} · {decoded.photometric} · {decoded.transfer_syntax} · "
               f"decoder {decoded.decoder} · window {centre_width} ({used.get('source')})")
    if shown.warnings:
        caption += " · warnings: " + "; ".join(shown.warnings)
    st.image(shown.image, caption=markdown_safe(caption), clamp=True)
if warning := burned_in_warning(ds):
    st.warning(warning)
if shown is not None:
    try:
        classifier = load_classifier()
    except RegistryError as exc:  # a damaged or tampered model must not take the viewer down with it
        st.error(markdown_safe(f"The findings model could not be loaded: {exc}"))
    else:
        analysis_section(classifier, upload, instance.source, frame, ds, decoded, shown, window, boxes,
                         user.username)

st.subheader("Header")
st.dataframe(metadata_table(ds), hide_index=True)
if st.button("Reveal identifying fields", key="imaging_reveal", help="Shows patient identifiers; this is audit-logged."):
    st.caption("Identifying fields revealed (recorded in the audit log):")
    st.dataframe(reveal_metadata(ds, user.username, "imaging page: metadata panel"), hide_index=True)

st.subheader("Export")
if st.button("De-identified export", key="imaging_export",
             help="Every instance of this series, de-identified (Annex E Basic Profile; pixels untouched)."):
    datasets = [i.dataset for i in series.instances]
    with tempfile.TemporaryDirectory(prefix="medui-deid-") as tmp:
        written = Deidentifier().export(datasets, Path(tmp))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in written:
                zf.write(path, path.name)
    audit.record(user.username, "export", kind="dicom_deid", files=len(written))
    st.session_state["imaging_deid"] = (series.uid, buf.getvalue())
export = st.session_state.get("imaging_deid")
if export and export[0] == series.uid:
    st.download_button("Download de-identified series (ZIP)", export[1], file_name="deidentified-series.zip",
                       mime="application/zip", key="imaging_deid_download")
    st.caption("Header identifiers removed; check the pixels for burned-in text before sharing.")
if shown is not None:
    png = io.BytesIO()
    Image.fromarray(shown.image).save(png, format="PNG")
    st.download_button("Download this view (PNG, no header)", png.getvalue(), file_name="view.png",
                       mime="image/png", key="imaging_png")
