"""Candidate vs production on the candidate's own test split: tiny ECG jobs on the bundled sample, a few steps each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medui import registry
from medui.training import JobSpec, job_dir, load_for_inference, run_job
from medui.training import compare as compare_mod
from medui.training.compare import CompareError, cached_comparison, compare_with_production, why_not_compared
from medui.training.sample_data import SAMPLES
from medui.training.tasks.ecg import EcgTask

FAST = {"task": "ecg", "max_steps": 4, "batch_size": 4, "eval_steps": 2, "logging_steps": 1}


def _job(**fields) -> dict:
    return run_job(JobSpec(**{**FAST, **fields}))


def _expected(job_id: str, data: Path, version: str, labels: list[str]) -> dict:
    """The production version's report computed here, independently, on the job's saved test indices."""
    indices = json.loads((job_dir(job_id) / "test_predictions.json").read_text())["indices"]
    examples = EcgTask().read(data, JobSpec(task="ecg"))
    indices = [i for i in indices if examples.keys[i] in labels]
    model, model_labels = load_for_inference(registry.get_version("ecg-rhythm", version))
    with torch.no_grad():
        logits = model(signals=torch.as_tensor(np.stack([examples.items[i] for i in indices]))).logits.numpy()
    columns = [model_labels.index(label) for label in labels]
    truth = np.array([labels.index(examples.keys[i]) for i in indices])
    return EcgTask().test_report(logits[:, columns], truth, labels)


def test_production_runs_on_the_candidates_test_split_and_is_cached(shipped_models, monkeypatch):
    first = _job(method="full")
    registry.promote("ecg-rhythm", first["version"], actor="test")
    second = _job(method="lora", seed=7)  # another seed: another test split than the production version's own
    assert why_not_compared(second["job_id"]) is None

    result = compare_with_production(second["job_id"])
    assert result["comparable"] and result["split"] == "test" and result["labels"] == ["irregular", "sinus"]
    assert (result["candidate_version"], result["production_version"]) == (second["version"], first["version"])
    assert result["n"] == result["split_size"] == second["metrics"]["n"]
    expected = _expected(second["job_id"], SAMPLES / "ecg_rhythm.npz", first["version"], ["irregular", "sinus"])
    assert result["production"]["confusion_matrix"] == expected["confusion_matrix"]
    for key in ("accuracy", "f1_macro", "auroc", "brier"):
        assert result["production"][key] == pytest.approx(expected[key], abs=1e-6)
        # the candidate, re-run here, scores what its job registered on the same split
        assert result["candidate"][key] == pytest.approx(second["metrics"][key], abs=1e-6)
    assert result["candidate"]["confusion_matrix"] == second["metrics"]["confusion_matrix"]

    def no_rerun(*args):
        raise AssertionError("recomputed")

    monkeypatch.setattr(compare_mod, "_compare", no_rerun)
    assert compare_with_production(second["job_id"]) == cached_comparison(second["job_id"]) == json.loads(
        json.dumps(result))
    cache = json.loads((job_dir(second["job_id"]) / "compare.json").read_text())
    assert list(cache) == [f"ecg-rhythm/{first['version']}"]


def test_no_production_and_the_production_version_itself_are_not_compared(shipped_models):
    job = _job(method="head-only")
    assert compare_with_production(job["job_id"]) is None
    assert why_not_compared(job["job_id"]) == "ecg-rhythm has no production version yet"
    registry.promote("ecg-rhythm", job["version"], actor="test")
    assert compare_with_production(job["job_id"]) is None
    assert why_not_compared(job["job_id"]) == f"ecg-rhythm v{job['version']} is itself the production version"
    assert not (job_dir(job["job_id"]) / "compare.json").exists()
    with pytest.raises(CompareError, match="job nosuch has no registered model"):
        compare_with_production("nosuch")


def test_different_label_sets_are_scored_on_the_shared_labels_only(shipped_models, tmp_path):
    first = _job(method="full")
    registry.promote("ecg-rhythm", first["version"], actor="test")
    with np.load(SAMPLES / "ecg_rhythm.npz") as npz:
        signals, labels = npz["signals"], npz["labels"].astype("<U9")
    labels[np.flatnonzero(labels == "irregular")[::2]] = "paced"  # a class production has never seen
    path = tmp_path / "three.npz"
    np.savez(path, signals=signals, labels=labels, fs=100.0)
    second = _job(method="full", data=str(path))

    result = compare_with_production(second["job_id"])
    assert result["comparable"] and result["labels"] == ["irregular", "sinus"]
    assert result["left_out_labels"] == ["paced"]
    indices = json.loads((job_dir(second["job_id"]) / "test_predictions.json").read_text())["indices"]
    assert result["n"] == sum(labels[i] != "paced" for i in indices) < result["split_size"]
    expected = _expected(second["job_id"], path, first["version"], ["irregular", "sinus"])
    assert result["production"]["confusion_matrix"] == expected["confusion_matrix"]
    assert result["production"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


def test_cli_compare_and_show_json(shipped_models, cli):
    from medui.training import jobs

    first = _job(method="full")
    registry.promote("ecg-rhythm", first["version"], actor="test")
    spec = JobSpec(**FAST, method="full", seed=3)
    job_id = jobs.submit(spec, "test")
    result = run_job(spec, job_id=job_id)  # in this process: the row is finished by hand, as the runner would
    jobs.mark_finished(job_id, "succeeded", result=jobs.result_summary(result), only_if=("queued",))

    code, out, _ = cli("jobs", "show", job_id, "--json")
    assert code == 0 and "comparison" not in json.loads(out)
    code, out, _ = cli("jobs", "compare", job_id)
    assert code == 0 and f"v{result['version']} (candidate) vs v{first['version']} (production)" in out
    assert "accuracy" in out
    code, out, _ = cli("jobs", "show", job_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["comparison"]["production_version"] == first["version"]
    assert shown["comparison"]["n"] == result["metrics"]["n"] and "log_tail" in shown
    code, _, err = cli("jobs", "compare", "nosuch")
    assert code == 1 and "job nosuch has no registered model" in err


def test_shared_labels_pick_columns_and_examples():
    from medui.training.compare import _on_shared

    logits = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])  # production columns: c, a, x
    # single-label data labels a, b, c: the b example is left out, columns reordered to the data's a, c
    got, y = _on_shared(logits, np.array([0, 1, 2]), ["a", "b", "c"], ["c", "a", "x"], ["a", "c"], False)
    assert got.tolist() == [[2.0, 1.0], [8.0, 7.0]] and y.tolist() == [0, 1]
    # multi-label: every example stays, only the shared findings' columns and targets
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]])
    got, y = _on_shared(logits, targets, ["a", "b", "c"], ["c", "a", "x"], ["a", "c"], True)
    assert got.tolist() == [[2.0, 1.0], [5.0, 4.0], [8.0, 7.0]] and y.tolist() == [[1, 1], [0, 0], [1, 1]]
