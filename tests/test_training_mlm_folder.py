"""mlm datasets as a folder of .txt files (the spec accepts a folder for mlm only), and a ner job that starts
from the continued-pretrained encoder trained on it."""

from __future__ import annotations

import pytest

from medui.registry import get_version
from medui.training import DatasetError, JobSpec, SpecError, run_job, validate_dataset
from medui.training.tasks.mlm import read_notes

FAST = {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "logging_steps": 1, "max_length": 32}
NOTES = [f"Patient {i} seen in clinic, blood pressure {120 + i}/80, continue lisinopril {i % 3 + 1}0 mg daily."
         for i in range(24)]


def _folder(tmp_path):
    root = tmp_path / "notes"
    (root / "2025" / "cardiology").mkdir(parents=True)
    (root / ".git").mkdir()
    for i, note in enumerate(NOTES):
        sub = root / "2025" / "cardiology" if i % 2 else root
        (sub / f"note{i:02d}.txt").write_text(note + "\n\n")
    (root / ".git" / "HEAD.txt").write_text("not a note\n")
    (root / ".hidden.txt").write_text("not a note\n")
    (root / "README.md").write_text("not a note\n")
    return root


def test_every_txt_file_of_a_folder_and_its_subfolders_is_read(tmp_path):
    notes = read_notes(_folder(tmp_path))
    assert sorted(n["text"] for n in notes) == sorted(NOTES)
    assert {n["file"] for n in notes} >= {"note00.txt", "2025/cardiology/note01.txt"}
    assert all(n["line"] == 1 for n in notes)


def test_the_spec_accepts_a_folder_for_mlm_only_and_hashes_its_content(tmp_path):
    root = _folder(tmp_path)
    report = validate_dataset(JobSpec(task="mlm", data=str(root), **FAST))
    assert report["rows"] == 24 and report["files"] == 24 and len(report["sha256"]) == 64
    assert validate_dataset(JobSpec(task="mlm", data=str(root)))["sha256"] == report["sha256"]
    (root / "note00.txt").write_text("Changed note.\n")
    assert validate_dataset(JobSpec(task="mlm", data=str(root)))["sha256"] != report["sha256"]
    with pytest.raises(SpecError, match="is a folder; ner datasets are a single file"):
        JobSpec(task="ner", data=str(root))


def test_a_folder_without_text_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="empty: the folder holds no .txt files"):
        read_notes(tmp_path / "empty")
    (tmp_path / "empty" / "blank.txt").write_text("\n \n")
    with pytest.raises(DatasetError, match="every .txt file is empty or blank"):
        read_notes(tmp_path / "empty")
    (tmp_path / "empty" / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DatasetError, match="empty/bad.txt line 2: not UTF-8 text"):
        read_notes(tmp_path / "empty")


@pytest.mark.slow
def test_a_ner_job_starts_from_an_mlm_result_trained_on_a_folder(tmp_path, shipped_models):
    mlm = run_job(JobSpec(task="mlm", method="full", data=str(_folder(tmp_path)), name="notes-mlm", **FAST))
    mv = get_version("notes-mlm", mlm["version"])
    assert mv.task == "mlm" and mv.provenance["data"] == str(tmp_path / "notes") and mv.provenance["data_sha256"]
    ner = run_job(JobSpec(task="ner", method="lora", base=f"notes-mlm/{mv.version}", name="notes-ner-adapted",
                          **FAST))
    nv = get_version("notes-ner-adapted", ner["version"])
    assert ner["status"] == "completed" and nv.base_model == f"notes-mlm/{mv.version}" and "f1" in nv.metrics
