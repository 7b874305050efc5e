"""Continued pretraining (mlm) on unlabelled notes, registered as a base a ner job starts from. CPU, tiny steps."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from medui.registry import get_version, load_state_dict
from medui.training import DatasetError, JobSpec, run_job
from medui.training.bases import minilm_path
from medui.training.sample_data import SAMPLES, notes_unlabelled
from medui.training.tasks.mlm import read_notes

FAST = {"max_steps": 3, "batch_size": 4, "eval_steps": 3, "logging_steps": 1, "max_length": 32}


def test_committed_unlabelled_notes_are_the_generator_output():
    assert (SAMPLES / "notes_unlabelled.txt").read_text(encoding="utf-8").splitlines() == notes_unlabelled()
    assert len(notes_unlabelled()) == 60 and JobSpec(task="mlm").data == str(SAMPLES / "notes_unlabelled.txt")


def test_reads_one_note_a_line_and_a_zip_of_txt_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_bytes(b"\xef\xbb\xbfFirst note.\n\n  Second note.  \r\nThird note.\n")
    notes = read_notes(text)
    assert [n["text"] for n in notes] == ["First note.", "Second note.", "Third note."]
    assert [n["line"] for n in notes] == [1, 3, 4]
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ward/b.txt", "Note b1.\nNote b2.\n")
        zf.writestr("a.txt", "Note a1.\n")
        zf.writestr("README.md", "not a note")
        zf.writestr("__MACOSX/._a.txt", b"\x00\x05junk")
    notes = read_notes(archive)
    assert [(n["file"], n["text"]) for n in notes] == [("a.txt", "Note a1."), ("ward/b.txt", "Note b1."),
                                                       ("ward/b.txt", "Note b2.")]


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("empty.txt", b"", "empty.txt: no text"),
    ("blank.txt", b"\n  \n", "blank.txt: no text"),
    ("nul.txt", b"ok line\nbad\x00line\n", "nul.txt line 2: contains NUL bytes"),
    ("latin.txt", b"ok\nok\nfi\xe8vre\n", "latin.txt line 3: not UTF-8"),
    ("notes.zip", _zip(**{"x.txt": b"fine\n", "y.txt": b"\xff\xfe\x00bad"}), "notes.zip:y.txt line 1: contains NUL"),
    ("notes.zip", _zip(**{"x.md": b"no txt here"}), "holds no .txt files"),
    ("notes.zip", b"PK\x03\x04 damaged", "damaged"),
    ("notes.csv", b"a,b\n", "plain UTF-8 text"),
])
def test_refuses_unusable_text(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        read_notes(path)


def test_mlm_refuses_methods_other_than_full_and_lora():
    with pytest.raises(ValueError, match="mlm supports the methods full, lora"):
        run_job(JobSpec(task="mlm", method="ia3", **FAST))


@pytest.mark.slow
def test_mlm_full_then_ner_lora_on_the_adapted_encoder():
    result = run_job(JobSpec(task="mlm", method="full", name="notes-mlm", **FAST))
    assert result["status"] == "completed" and result["stats"]["global_step"] == 3
    mv = get_version("notes-mlm", result["version"])
    assert mv.task == "mlm" and mv.method == "full"
    assert mv.metrics["perplexity"] > 1 and mv.metrics["masked_tokens"] > 0
    assert "untrained" in mv.metrics["mlm_head"]

    original = load_file(str(minilm_path() / "model.safetensors"))
    trained = {k.removeprefix("mlm.bert."): v for k, v in load_state_dict(mv).items() if k.startswith("mlm.bert.")}
    shared = sorted(set(original) & set(trained))
    assert "embeddings.word_embeddings.weight" in shared and len(shared) > 50
    assert all(original[k].shape == trained[k].shape for k in shared)
    assert any(not torch.equal(original[k], trained[k]) for k in shared)  # training changed the encoder

    ner = run_job(JobSpec(task="ner", method="lora", base=f"notes-mlm/{mv.version}", name="notes-ner-adapted",
                          **{**FAST, "max_steps": 2, "eval_steps": 2}))
    nv = get_version("notes-ner-adapted", ner["version"])
    assert nv.base_model == f"notes-mlm/{mv.version}" and nv.provenance["base"] == f"notes-mlm/{mv.version}"
    assert "f1" in nv.metrics


@pytest.mark.slow
def test_mlm_lora_is_merged_into_a_plain_encoder_folder():
    from transformers import AutoModelForTokenClassification

    from medui.training.bases import encoder_folder

    result = run_job(JobSpec(task="mlm", method="lora", name="notes-mlm-lora", **{**FAST, "max_steps": 2,
                                                                                    "eval_steps": 2}))
    mv = get_version("notes-mlm-lora", result["version"])
    assert mv.method == "lora" and "perplexity" in mv.metrics
    folder = encoder_folder(mv)
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert encoder_folder(mv) == folder  # made once
    merged, original = load_file(str(folder / "model.safetensors")), load_file(str(minilm_path() / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    assert merged[key].shape == original[key].shape and not torch.equal(merged[key], original[key])
    assert torch.equal(merged["encoder.layer.0.attention.self.key.weight"],
                       original["encoder.layer.0.attention.self.key.weight"])  # lora touched query/value only
    model = AutoModelForTokenClassification.from_pretrained(str(folder), num_labels=3)
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight.detach(), merged[key])
