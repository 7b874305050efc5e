"""Streamlit pieces of the Imaging page below the viewer: findings, attribution overlay, trust panel, save, export.

Per image (upload, instance, frame) the classification runs once and is kept in session_state with every map and
trust report computed for it, so moving a slider never recomputes them; a new upload drops them.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from medui import records
from medui.imaging.analysis import (
    NOT_FOR_CLINICAL_USE,
    ImageFindings,
    cam_layer,
    cam_summary,
    classify_image,
    explain,
    image_entry,
    labels_in_zip,
    model_view,
    top_finding,
)
from medui.imaging.attribution import CAM_METHODS, METHOD_NAMES, overlay
from medui.imaging.phantom import Finding
from medui.imaging.uploads import load_uploads
from medui.ui.text import markdown_safe

STATE = "imaging_analysis"


def load(items: list[tuple[str, bytes]]) -> tuple[list, list[tuple[str, str]], dict[str, list[Finding]]]:
    """(studies, refused, boxes by DICOM file name) for uploads; a phantom study's labels.csv gives the boxes."""
    studies, refused = load_uploads(items)
    boxes: dict[str, list[Finding]] = {}
    for _, data in items:
        boxes.update(labels_in_zip(data))
    if boxes:  # labels.csv was read for its boxes: not a refused DICOM file
        refused = [(name, message) for name, message in refused if PurePosixPath(name).name != "labels.csv"]
    return studies, refused, boxes


def _image_state(image_key: tuple) -> dict[str, Any]:
    """This image's cached results, {"found", "maps", "trust"}; other images of the same upload are kept too."""
    upload = image_key[0]
    state = st.session_state.get(STATE)
    if state is None or state["upload"] != upload:
        state = st.session_state[STATE] = {"upload": upload, "images": {}}
    return state["images"].setdefault(image_key, {"found": None, "maps": {}, "trust": {}})


def findings_figure(findings: list[dict[str, Any]]) -> go.Figure:
    """Horizontal bars of probability per finding, most probable on top."""
    ordered = list(reversed(findings))
    fig = go.Figure(go.Bar(x=[f["probability"] for f in ordered], y=[f["label"] for f in ordered], orientation="h",
                           text=[f"{100 * f['probability']:.0f}%" for f in ordered], textposition="auto"))
    fig.update_layout(xaxis={"range": [0, 1], "tickformat": ".0%", "title": "probability"}, height=90 + 40 *
                      len(findings), margin={"l": 10, "r": 10, "t": 10, "b": 40})
    return fig


def analysis_section(classifier: Any, upload: str, source: str, frame: int, ds: Any, decoded: Any, shown: Any,
                     window: Any, boxes: dict[str, list[Finding]], username: str) -> None:
    """Findings, overlay, trust panel and save for the image on screen."""
    st.subheader("Findings")
    st.caption(NOT_FOR_CLINICAL_USE)
    model = (classifier.version.name, str(classifier.version.version)) if classifier is not None else None
    cached = _image_state((upload, source, frame, model))  # a newly promoted model is a new entry
    if cached["found"] is None:
        with st.spinner("Classifying…"):
            cached["found"] = classify_image(classifier, model_view(ds, decoded, shown, window, frame), ds)
    found: ImageFindings = cached["found"]
    warnings = [*shown.warnings, *found.warnings]
    for warning in found.warnings:
        st.warning(markdown_safe(warning))
    if not found.findings:
        _save_panel(image_entry(source, ds, decoded, shown, found, None, warnings), upload, found, username)
        return
    st.plotly_chart(findings_figure(found.findings), key="imaging_findings_chart")
    st.caption(f"Model {found.model['name']} v{found.model['version']}. Probabilities of the findings this model "
               "was trained for; calibrated on held-out synthetic images only.")
    amap = _overlay_panel(classifier, found, cached, shown)
    trust = _trust_panel(classifier, found, cached, amap, boxes.get(PurePosixPath(source).name))
    entry = image_entry(source, ds, decoded, shown, found, cam_summary(amap) if amap else None, warnings)
    if amap is not None:
        entry["attribution"] = {**cam_summary(amap), "raw_max": round(amap.raw_max, 6)}
    if trust is not None:
        entry["trust"] = trust
    _save_panel(entry, upload, found, username)


def _overlay_panel(classifier: Any, found: ImageFindings, cached: dict[str, Any], shown: Any) -> Any:
    st.subheader("Where the model looked")
    labels = [f["label"] for f in found.findings if f["label"] != "normal"]
    if not labels:
        return None
    left, middle, right = st.columns(3)
    method = left.selectbox("Method", list(METHOD_NAMES), format_func=METHOD_NAMES.get, key="imaging_cam_method",
                            help="Grad-CAM family: fast, coarse (last conv stage). Integrated Gradients and "
                                 "Occlusion: pixel-level, seconds per map.")
    top = top_finding(found.findings)
    label = middle.selectbox("Finding", labels, index=labels.index(top), key="imaging_cam_label")
    opacity = right.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="imaging_cam_opacity")
    map_key = (label, method)
    if map_key not in cached["maps"]:
        if method not in CAM_METHODS and not st.button(f"Compute the {METHOD_NAMES[method]} map", key="imaging_cam_go"):
            st.info(f"{METHOD_NAMES[method]} takes a few seconds per map: press the button to compute it.")
            return None
        with st.spinner(f"Computing the {METHOD_NAMES[method]} map…"):
            cached["maps"][map_key] = explain(classifier, found, label, method, shown.image.shape)
    amap = cached["maps"][map_key]
    probability = next(f["probability"] for f in found.findings if f["label"] == label)
    fixed = st.checkbox("Fixed colour scale (compare strengths across findings and images)", key="imaging_cam_fixed")
    # Per method (their units differ by orders of magnitude); it starts at this map's peak and then stays put, so
    # another finding or image is drawn against the same number.
    scale = st.number_input("Full colour at (logit units)", min_value=1e-6, value=float(f"{amap.raw_max:.3g}") or 1.0,
                            format="%.3g", key=f"imaging_cam_scale_{method}") if fixed else None
    picture = overlay(shown.image, amap, opacity, scale=scale)
    if st.checkbox("Side by side", value=True, key="imaging_cam_side"):
        one, two = st.columns(2)
        one.image(shown.image, caption="Displayed image", clamp=True)
        two.image(picture, caption=f"{METHOD_NAMES[method]}: {label}")
    else:
        st.image(picture, caption=f"{METHOD_NAMES[method]}: {label}")
    where = f"at row {amap.peak[0]}, column {amap.peak[1]}" if amap.peak else "nowhere (the map is empty)"
    st.caption(markdown_safe(
        f"{label}: probability {probability:.0%}. Peak evidence {amap.raw_max:.3g} logit units, {where}. "
        + ("Colours are scaled to this map's own peak, so a weak map still shows a hot spot: read the peak value. "
           if scale is None else f"Full colour at {scale:g} logit units. ")
        + (f"Layer: {amap.layer}." if amap.layer else f"Baseline: {amap.baseline}.")))
    png = io.BytesIO()
    Image.fromarray(picture).save(png, format="PNG")
    st.download_button("Download overlay (PNG)", png.getvalue(), file_name=f"overlay-{label}-{method}.png",
                       mime="image/png", key="imaging_cam_png")
    return amap


def _trust_panel(classifier: Any, found: ImageFindings, cached: dict[str, Any], amap: Any,
                 boxes: list[Finding] | None) -> dict[str, Any] | None:
    """The three checks for the map on screen, on demand; returns the report as stored with the analysis."""
    st.subheader("Can this map be trusted?")
    if amap is None:
        st.caption("Compute a map first.")
        return None
    key = (amap.target_label, amap.method)
    if key not in cached["trust"]:
        st.caption("Model randomisation (the map must change when the model's weights are scrambled), deletion and "
                   "insertion curves (removing the most-attributed pixels must lower the probability faster than "
                   "random pixels)" + (", and the pointing game against the phantom's known boxes." if boxes else
                                       "; the pointing game needs known finding boxes (a phantom study's labels.csv)."))
        if not st.button("Run the trust checks", key="imaging_trust_go"):
            return None
        from medui.imaging.trust import trust_report

        with st.spinner(f"Randomising the model and tracing the curves for {amap.target_label}…"):
            cached["trust"][key] = trust_report(classifier, found.classification.input,
                                                list(classifier.labels).index(amap.target_label), amap.method,
                                                amap=amap, boxes=boxes or (),
                                                layer=cam_layer(classifier, amap.method, amap.target_label))
    report = cached["trust"][key]
    for name, passed, verdict in report.checks():
        icon = {True: ":material/check_circle:", False: ":material/cancel:", None: ":material/remove:"}[passed]
        st.markdown(f"{icon} **{name}**: {markdown_safe(verdict)}")
    curves = report.curves
    fig = go.Figure([go.Scatter(x=curves.fractions, y=values, name=name, mode="lines", line={"dash": dash})
                     for name, values, dash in (("deletion (map order)", curves.deletion, "solid"),
                                                ("insertion (map order)", curves.insertion, "solid"))])
    fig.update_layout(xaxis={"title": "share of pixels removed / inserted", "tickformat": ".0%"}, height=260,
                      yaxis={"title": f"p({report.target_label})", "range": [0, 1]},
                      margin={"l": 10, "r": 10, "t": 10, "b": 40})
    st.plotly_chart(fig, key="imaging_trust_curves")
    if report.randomisation.stages:
        with st.expander("Randomisation stages"):
            st.dataframe([{"randomised layers": s.layers, "rank correlation": round(s.spearman, 3),
                           "SSIM": round(s.ssim, 3)} for s in report.randomisation.stages], hide_index=True)
    return report.to_dict()


def _save_panel(entry: dict[str, Any], upload: str, found: ImageFindings, username: str) -> None:
    st.subheader("Save")
    patient = st.text_input("Patient identifier", key="imaging_patient").strip()
    if st.button("Save analysis", type="primary", disabled=not patient, key="imaging_save"):
        model = found.model or {}
        try:
            analysis_id = records.save_analysis("imaging", entry, created_by=username, patient=patient,
                                                input_sha256=upload, model_name=model.get("name"),
                                                model_version=model.get("version"))
        except ValueError as exc:
            st.error(markdown_safe(str(exc)))
            return
        st.success(f"Saved as analysis {analysis_id} for {markdown_safe(patient)}.")
