"""Admin → Training: configure and launch a fine-tuning job, watch it live, read its evaluation, promote it."""

import json

import pandas as pd
import streamlit as st

from medui import registry
from medui.registry import RegistryError
from medui.training import METHODS, TASK_KINDS, compare, jobs, monitor, runner
from medui.training.spec import JobSpec
from medui.ui import training_view as view
from medui.ui.models import forget_loaded_models
from medui.ui.session import require_user

admin = require_user(admin=True)
st.title("Training")
runner.tick()
if notice := st.session_state.pop("training_notice", None):
    st.success(notice)


@st.cache_data(max_entries=32, show_spinner="Checking the dataset…")
def checked(spec_json: str) -> monitor.Preview:
    return monitor.preview(json.loads(spec_json))


st.subheader("New job")
help_text = JobSpec.help_text()
task = st.selectbox("Task", sorted(TASK_KINDS), key="tr_task", help=help_text["task"])
kind = TASK_KINDS[task]
bases = ["default"] + sorted({v.name for v in registry.list_versions() if v.task in kind.accepted_bases})
base = st.selectbox("Base model", bases, key="tr_base", help=help_text["base"])
method = st.selectbox("Method", METHODS, index=METHODS.index("lora"), key="tr_method", help=help_text["method"])
name = st.text_input("Registry name", placeholder=kind.default_name, key="tr_name", help=help_text["name"])
preset = st.radio("Preset", list(monitor.PRESETS), horizontal=True, key="tr_preset",
                  captions=[", ".join(f"{k} {v}" for k, v in p.items()) for p in monitor.PRESETS.values()])
with st.expander("Advanced (empty = preset or task default)"):
    adv = {key: st.number_input(key.replace("_", " "), value=None, key=f"tr_{key}", help=help_text[key], **opts)
           for key, opts in {"lr": {"format": "%.6f", "min_value": 0.0}, "batch_size": {"step": 1, "min_value": 1},
                             "epochs": {"min_value": 0.0}, "max_steps": {"step": 1, "min_value": 0},
                             "seed": {"step": 1, "min_value": 0}, "eval_steps": {"step": 1, "min_value": 0}}.items()}
    adv = {k: (float(v) if k in ("lr", "epochs") else int(v)) if v is not None else None for k, v in adv.items()}
    skip = st.checkbox("Drop malformed rows instead of refusing the dataset", key="tr_skip")

source = st.radio("Dataset", ["Use the bundled sample dataset", "Upload a dataset"], key="tr_source")
data = ""
if source == "Upload a dataset":
    suffixes = monitor.DATASET_SUFFIXES[task]
    upload = st.file_uploader(f"{task} dataset ({', '.join(suffixes)})", type=[s[1:] for s in suffixes],
                              key="tr_upload")
    if upload is None:
        st.info("Choose a file to check it before launching.")
        st.stop()
    try:
        data = str(monitor.save_upload(upload.getvalue(), upload.name, task))
    except monitor.UploadError as exc:
        st.error(str(exc))
        st.stop()

spec = monitor.build_spec(task, preset, method=method, base=base, name=name.strip() or None, data=data,
                          skip_bad_rows=skip, **adv)
check = checked(json.dumps(spec, sort_keys=True))
view.show_preview(check)
if st.button("Launch training", type="primary", disabled=not check.ok):
    try:
        job_id = jobs.submit(spec, admin.username)
    except ValueError as exc:  # SpecError, DatasetError, JobError: nothing was queued
        st.error(str(exc))
    else:
        runner.tick()
        st.session_state["tr_job"] = job_id
        st.session_state["training_notice"] = f"Job {job_id} launched."
        st.rerun()

st.subheader("Jobs")
rows = jobs.list_jobs()
if not rows:
    st.info("No training jobs yet.")
    st.stop()
st.dataframe(pd.DataFrame(monitor.job_table(rows)), hide_index=True)
ids = [r["job_id"] for r in rows]
if st.session_state.get("tr_job") not in ids:
    st.session_state["tr_job"] = ids[0]
job_id = st.selectbox("Job", ids, key="tr_job")
job = jobs.get_job(job_id)


@st.fragment(run_every=2 if job["status"] in ("queued", "running") else None)
def live(job_id: str, shown_status: str) -> None:
    runner.tick()
    row = jobs.get_job(job_id)
    if row["status"] != shown_status:
        st.rerun(scope="app")  # finished (or started): the whole page shows the new state
    st.markdown(f"Status: **{row['status']}**")
    view.show_curves(monitor.read_metrics(monitor.job_metrics_path(job_id)))
    st.caption("Log (last lines)")
    st.code(monitor.log_tail(row) or "(no output yet)", language="text")


live(job_id, job["status"])

if job["status"] in ("queued", "running"):
    sure = st.checkbox(f"Yes, cancel job {job_id}", key="tr_confirm_cancel")
    if st.button("Cancel job", disabled=not sure):
        try:
            jobs.cancel(job_id, admin.username)
        except jobs.JobError as exc:
            st.error(str(exc))
        else:
            st.session_state["training_notice"] = f"Job {job_id} cancelled."
            st.rerun()
elif job["status"] == "failed":
    st.error("The job failed:")
    st.code(job["error"] or "", language="text")
elif job["status"] == "succeeded":
    version = monitor.candidate(job)
    if version is None:
        st.warning("The job's registered version is no longer in the registry.")
        st.stop()
    st.subheader(f"Evaluation: {version.name} v{version.version} ({version.stage})")
    view.show_report(job["task"], version.metrics, *monitor.param_counts(job, version))
    production = monitor.production_of(version.name)
    if production is not None and production.version != version.version:
        view.show_comparison(job["task"], version, production)
        same_split = compare.cached_comparison(job_id)
        if same_split is None and st.button("Compare with production on this test split"):
            try:
                with st.spinner(f"Running production v{production.version} on this job's test split…"):
                    same_split = compare.compare_with_production(job_id)
            except ValueError as exc:  # CompareError: the dataset changed, the job's files are gone
                st.error(str(exc))
        if same_split is not None:
            view.show_same_split(same_split)
    if version.stage == "production":
        st.success(f"{version.name} v{version.version} is in production.")
    else:
        sure = st.checkbox(f"Yes, every clinician will use {version.name} v{version.version}",
                           key="tr_confirm_promote")
        if st.button("Promote to production", type="primary", disabled=not sure):
            try:
                registry.promote(version.name, version.version, actor=admin.username)
            except RegistryError as exc:
                st.error(str(exc))
            else:
                forget_loaded_models()
                st.session_state["training_notice"] = f"{version.name} v{version.version} is now in production."
                st.rerun()
