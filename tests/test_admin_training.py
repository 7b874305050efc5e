"""Admin → Training: refused to clinicians, dataset preview before launch, a tiny ECG job end to end, promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from medui import auth, registry
from medui.training import jobs, monitor, runner
from medui.training.tasks.ner import NerTask

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "admin_training.py")
PASSWORD = "Correct-Horse-9"


@pytest.fixture(autouse=True)
def _routed(routed_like_a_live_server, one_job_slot):
    """Pages run through the router; one job slot; no training process outlives a test."""


def page_as(username: str, role: str) -> AppTest:
    auth.create_user(username, PASSWORD, role, actor="test")
    PagesManager.uses_pages_directory = False  # the page file is the main script here, as after routing
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["medui_token"] = auth.start_session(username)
    return at.run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_a_clinician_is_refused():
    at = page_as("dr.grey", "clinician")
    assert [e.value for e in at.error] == ["This page is for administrators."]
    assert not at.button and not at.dataframe


def test_an_admin_with_no_jobs_sees_the_form_and_the_sample_preview():
    at = page_as("boss", "admin")
    assert not at.exception
    assert at.title[0].value == "Training"
    assert "No training jobs yet." in [i.value for i in at.info]
    assert not at.error and at.dataframe  # the bundled sample's counts per label and split sizes
    assert not button(at, "Launch training").disabled


def test_a_tiny_ecg_job_launches_runs_reports_and_promotes(shipped_models):
    at = page_as("boss", "admin")
    at.number_input(key="tr_max_steps").set_value(2)
    at.number_input(key="tr_eval_steps").set_value(2)
    at.number_input(key="tr_batch_size").set_value(4).run()
    button(at, "Launch training").click().run()
    assert not at.exception
    [row] = jobs.list_jobs()
    assert row["task"] == "ecg" and row["method"] == "lora" and row["spec"]["max_steps"] == 2
    assert row["created_by"] == "boss"
    done = runner.wait(row["job_id"], timeout_s=240)
    assert done["status"] == "succeeded", done["error"]
    version = done["result"]["version"]

    at.run()
    assert not at.exception
    assert "Status: **succeeded**" in [m.value for m in at.markdown]
    assert at.get("plotly_chart")
    assert {m.label for m in at.metric} >= {"accuracy", "f1_macro", "auroc", "brier"}
    assert any("trainable of" in c.value for c in at.caption)
    assert "registered ecg-rhythm version" in at.code[0].value
    assert button(at, "Promote to production").disabled
    at.checkbox(key="tr_confirm_promote").check().run()
    button(at, "Promote to production").click().run()
    assert not at.exception
    assert registry.production_versions()["ecg-rhythm"] == version
    assert f"ecg-rhythm v{version} is now in production." in [s.value for s in at.success]


def _bad_ner_file(tmp_path: Path) -> Path:
    lines = NerTask.sample_path.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[2])
    bad["entities"][0]["end"] = len(bad["text"]) + 10  # a span past the end of the text
    lines[2] = json.dumps(bad)
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_bad_dataset_is_refused_with_its_reason_and_queues_nothing(tmp_path):
    saved = monitor.save_upload(_bad_ner_file(tmp_path).read_bytes(), "../my notes!.jsonl", "ner")
    assert saved.parent.parent == monitor._config.settings().home / "uploads" and saved.name == "my_notes.jsonl"
    spec = monitor.build_spec("ner", "quick check", method="lora", data=str(saved))
    checked = monitor.preview(spec)
    assert not checked.ok and checked.error.startswith("line 3:")
    assert [r["row"] for r in checked.rejected] == [3]
    with pytest.raises(ValueError, match="line 3:"):
        jobs.submit(spec, "boss")
    assert jobs.list_jobs() == []
    with pytest.raises(monitor.UploadError, match="ner datasets are .jsonl or .ndjson or .conll"):
        monitor.save_upload(b"x", "notes.csv", "ner")
    with pytest.raises(monitor.UploadError, match="not an .npz"):
        monitor.save_upload(b"not a zip", "ecg.npz", "ecg")
    good = monitor.preview(monitor.build_spec("ecg", "standard"))
    assert good.ok and sum(r["count"] for r in monitor.label_table(good.report)) == good.report["accepted"]


def test_read_metrics_and_curves(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join([
        json.dumps({"event": "train", "step": 1, "loss": 1.5, "lr": 0.001}),
        json.dumps({"event": "train", "step": 2, "loss": 1.2, "lr": 0.002}),
        json.dumps({"event": "eval", "step": 2, "eval_loss": 1.1, "eval_accuracy": 0.6, "eval_runtime": 0.3}),
        json.dumps({"event": "test", "step": 2, "accuracy": 0.7}),
        '{"event": "train", "step": 3, "lo',  # a line still being written
    ]) + "\n", encoding="utf-8")
    rows = monitor.read_metrics(path)
    assert [r["event"] for r in rows] == ["train", "train", "eval", "test"]
    series = monitor.curves(rows)
    assert series == {"train_loss": [(1, 1.5), (2, 1.2)], "lr": [(1, 0.001), (2, 0.002)],
                      "eval_loss": [(2, 1.1)], "eval_accuracy": [(2, 0.6)]}
    assert monitor.read_metrics(tmp_path / "missing.jsonl") == []


def test_comparison_pairs_metrics_by_name():
    table = monitor.comparison("ecg", {"accuracy": 0.9, "brier": 0.1, "auroc": 0.95, "per_class": {}, "n": 40},
                               {"accuracy": 0.8, "brier": 0.2, "f1_macro": 0.7, "n": 30})
    by = {r["metric"]: r for r in table}
    assert [r["metric"] for r in table] == ["accuracy", "f1_macro", "auroc", "brier", "n"]
    assert by["accuracy"]["candidate"] == 0.9 and by["accuracy"]["production"] == 0.8
    assert by["accuracy"]["difference"] == pytest.approx(0.1) and by["accuracy"]["better"] == "candidate"
    assert by["brier"]["better"] == "candidate"  # lower is better
    assert by["f1_macro"]["candidate"] is None and by["f1_macro"]["difference"] is None
    assert by["auroc"]["production"] is None


def test_the_report_compares_with_production_on_the_jobs_own_test_split(shipped_models):
    from medui.training import JobSpec, run_job

    fast = {"task": "ecg", "method": "full", "max_steps": 2, "batch_size": 4, "eval_steps": 2}
    first = run_job(JobSpec(**fast))
    registry.promote("ecg-rhythm", first["version"], actor="test")
    spec = JobSpec(**fast, seed=5)
    job_id = jobs.submit(spec, "boss")
    second = run_job(spec, job_id=job_id)  # in this process; the row is finished as the runner would
    jobs.mark_finished(job_id, "succeeded", result=jobs.result_summary(second), only_if=("queued",))

    at = page_as("boss", "admin")
    assert not at.exception and at.session_state["tr_job"] == job_id
    assert "Registered metrics: each version measured on its own job's test split." in [c.value for c in at.caption]
    button(at, "Compare with production on this test split").click().run()
    assert not at.exception and not at.error
    n = second["metrics"]["n"]
    assert f"**Same test split**: {n} examples of this job's test split, both versions run on them" in [
        m.value for m in at.markdown]
    at.run()  # cached in the job folder: shown again without the button
    assert not [b for b in at.button if b.label == "Compare with production on this test split"]
    assert any("Same test split" in m.value for m in at.markdown)
