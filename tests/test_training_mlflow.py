"""MLflow tracking: with MLFLOW_TRACKING_URI set a job's train, eval and test metrics and its spec go to an MLflow
run named after the job; without mlflow installed such a job fails at once with a one-line message."""

from __future__ import annotations

import json
import sys

import pytest

from medui.training import JobSpec, SpecError, run_job
from medui.training.job import read_status

FAST = {"max_steps": 4, "batch_size": 4, "eval_steps": 2, "logging_steps": 1}


def test_tracking_uri_without_mlflow_fails_the_job_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(SpecError, match="MLFLOW_TRACKING_URI is set but mlflow is not installed"):
        run_job(JobSpec(task="ecg", method="lora", **FAST), job_id="no-mlflow")
    status = read_status("no-mlflow")
    assert status["status"] == "failed" and "pip install mlflow-skinny" in status["error"]
    assert "\n" not in status["error"]


@pytest.mark.slow
def test_metrics_also_go_to_mlflow_when_a_tracking_uri_is_set(monkeypatch, tmp_path, shipped_models):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "medui-test")
    result = run_job(JobSpec(task="ecg", method="lora", **FAST), job_id="tracked")
    assert result["status"] == "completed" and mlflow.active_run() is None  # the run is closed

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("medui-test").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.tags["medui.task"] == "ecg" and run.data.tags["medui.version"] == result["version"]
    assert run.data.params["spec.method"] == "lora" and run.data.params["spec.max_steps"] == "4"
    assert {"loss", "eval_loss", "eval_accuracy", "test_accuracy", "test_brier"} <= set(run.data.metrics)
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]
    # TensorBoard and metrics.jsonl keep working beside it
    from medui.training.job import job_dir

    rows = [json.loads(line) for line in (job_dir("tracked") / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["event"] == "test"
