"""Clinical NER: JSONL character spans, aligned to a fast tokenizer's tokens as BIO tags; seqeval entity metrics.

A text longer than the job's max_length is split into overlapping windows of max_length tokens (each a training
row), so long notes are learnt whole instead of truncated.

CoNLL BIO and BRAT standoff datasets are converted to the same span rows by medui.training.ner_formats.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from medui.training.bases import BaseRef
from medui.training.data import Examples, check_counts, settle_rejections
from medui.training.errors import DatasetError, SpecError
from medui.training.ner_align import bio_labels
from medui.training.ner_formats import _decode, detect_format, read_converted
from medui.training.tasks.base import Built, TaskKind, text_tokenizer

_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
WINDOW_OVERLAP = 32  # tokens shared by consecutive windows of a long text (at most a quarter of max_length)


class EncodedRows(Dataset):
    """Tokenised rows (input_ids, attention_mask, labels…) as a torch Dataset; the mlm task uses it too."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def _entity_problem(entity: Any, n: int, text: str) -> str | None:
    """Why one entity is unusable, or None."""
    if not isinstance(entity, dict) or not {"start", "end", "label"} <= set(entity):
        return f"entity {n} is not an object with start, end and label"
    start, end, label = entity["start"], entity["end"], entity["label"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        return f"entity {n} start and end must be whole numbers, got {start!r}-{end!r}"
    if not 0 <= start < end:
        return f"entity {start}-{end} is empty or reversed"
    if end > len(text):
        return f"entity {start}-{end} runs past the end of the text ({len(text)} characters)"
    if isinstance(label, str) and (re.match(r"^[BIES][-_]", label) or label == "O"):
        return f"entity {start}-{end} label {label!r} looks like a BIO tag; give the bare entity type"
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        return f"entity {start}-{end} label must be a bare entity type such as \"PROBLEM\", got {label!r}"
    if not text[start:end].strip():
        return f"entity {start}-{end} covers only whitespace"
    return None


def _row_problem(raw: Any) -> str | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str) or not raw["text"].strip():
        return "\"text\" must be a non-empty string"
    if not isinstance(raw.get("entities"), list):
        return "no \"entities\" list (use [] for a text without entities)"
    for n, entity in enumerate(raw["entities"]):
        problem = _entity_problem(entity, n, raw["text"])
        if problem:
            return problem
    spans = sorted((e["start"], e["end"], e["label"]) for e in raw["entities"])
    for (s1, e1, l1), (s2, e2, l2) in pairwise(spans):
        if s2 < e1:
            return f"entities {s1}-{e1} ({l1}) and {s2}-{e2} ({l2}) overlap; nested entities are not supported"
    return None


def _window_tags(offsets: list[tuple[int, int]], entities: list[dict[str, Any]],
                 placed: set[int]) -> tuple[list[str | None], list[str]]:
    """BIO tags of one window: entities wholly inside are tagged (their index added to `placed`); the tokens of
    one cut by the window's edge are ignored by the loss, since the window cannot see where it starts or ends."""
    real = [(s, e) for s, e in offsets if e > s]
    if not real:
        return [None] * len(offsets), []
    low, high = real[0][0], real[-1][1]
    inside = [n for n, e in enumerate(entities) if e["start"] >= low and e["end"] <= high]
    placed.update(inside)
    tags, issues = bio_labels(offsets, [entities[n] for n in inside])
    for e in entities:
        if e["start"] < high and e["end"] > low and not (e["start"] >= low and e["end"] <= high):
            tags = [None if (s < e["end"] and t > e["start"]) else tag for (s, t), tag in zip(offsets, tags)]
    return tags, issues


class NerTask(TaskKind):
    name = "ner"
    default_name = "notes-ner"
    sample_path = Path(__file__).resolve().parent.parent / "samples" / "notes_ner.jsonl"
    # Measured on the sample: 30 steps of batch 8 reach entity F1 ~0.6-0.9 with these (lora: 0.0 at 5e-4).
    default_lr: ClassVar[dict[str, float]] = {
        "full": 5e-5, "head-only": 5e-3, "lora": 2e-3, "adalora": 2e-3, "ia3": 1e-2}
    head = "classifier"
    accepted_bases = ("ner", "mlm")

    def read(self, path: Path, spec: Any) -> Examples:
        fmt, info = detect_format(path), {}
        if fmt != "jsonl":  # CoNLL BIO or BRAT standoff, converted to JSONL-shaped rows (see ner_formats)
            converted = read_converted(path, fmt)
            items, rejected, rows, info = [], converted.rejected, converted.rows, converted.info(fmt)
            for raw in converted.items:
                problem = _row_problem(raw)
                if problem:
                    rejected.append({"row": raw["line"], "reason": f"{raw['where']}: {problem}"})
                else:
                    items.append({**raw, "entities": sorted(raw["entities"], key=lambda e: e["start"])})
        else:
            items, rejected, rows = self._read_jsonl(path)
        settle_rejections(rejected, spec.skip_bad_rows)
        if not items:
            raise DatasetError(f"{path.name}: no usable rows")
        counts = dict(sorted(Counter(e["label"] for item in items for e in item["entities"]).items()))
        check_counts(counts, "entities")
        # Stratify on each text's rarest entity type, so rare types reach every split.
        keys = [min((e["label"] for e in item["entities"]), key=lambda label: counts[label], default="none")
                for item in items]
        return Examples(items=items, keys=keys, labels=list(counts), counts=counts, rows=rows, rejected=rejected,
                        info={"entities": sum(counts.values()), **info})

    @staticmethod
    def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        items, rejected, rows = [], [], 0
        text = _decode(path.read_bytes(), path.name)  # DatasetError for bytes that are not text
        for line_no, line in enumerate(io.StringIO(text, newline=None), 1):  # line ends as the file's reader did
            if not line.strip():
                continue
            rows += 1
            try:
                raw = json.loads(line)
                problem = _row_problem(raw)
            except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
                problem = f"not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})"
            if problem:
                rejected.append({"row": line_no, "reason": f"line {line_no}: {problem}"})
                continue
            items.append({"text": raw["text"], "entities": sorted(raw["entities"], key=lambda e: e["start"]),
                          "line": line_no})
        return items, rejected, rows

    @staticmethod
    def tags(labels: list[str]) -> list[str]:
        return ["O"] + [f"{p}-{label}" for label in labels for p in ("B", "I")]

    def base_model(self, base: BaseRef, labels: list[str], info: dict[str, Any]) -> nn.Module:
        from transformers import AutoModelForTokenClassification

        tags = self.tags(labels)
        heads = {"num_labels": len(tags), "id2label": dict(enumerate(tags)),
                 "label2id": {t: i for i, t in enumerate(tags)}}
        if base.kind == "package":
            return AutoModelForTokenClassification.from_pretrained(str(base.path), **heads)
        from medui.training.serving import load_for_inference, load_imported_encoder

        if base.version.method == "imported":
            return load_imported_encoder(base.version, heads)
        model, base_labels = load_for_inference(base.version, merge=True)
        if base_labels != labels:  # a new label set: keep the encoder, start a new classifier
            model.classifier = nn.Linear(model.classifier.in_features, len(tags))
            model.num_labels = len(tags)
            for key, value in heads.items():
                setattr(model.config, key, value)
        return model

    def build(self, base: BaseRef, labels: list[str], info: dict[str, Any], spec: Any) -> Built:
        model = self.base_model(base, labels, info)
        tokenizer = text_tokenizer(base)
        if not getattr(tokenizer, "is_fast", False):
            raise SpecError(f"base {base.id} has no fast tokenizer; span alignment needs its offset mapping")
        return Built(model=model, processor=tokenizer, arch={"config": model.config.to_dict(),
                                                             "max_length": spec.max_length})

    def fresh(self, arch: dict[str, Any], labels: list[str]) -> nn.Module:
        from transformers import AutoConfig, AutoModelForTokenClassification

        config = dict(arch["config"])
        return AutoModelForTokenClassification.from_config(AutoConfig.for_model(config.pop("model_type"), **config))

    def encode(self, built: Built, examples: Examples, indices: list[int], spec: Any) -> tuple[Dataset, list]:
        tag_ids = {tag: i for i, tag in enumerate(self.tags(examples.labels))}
        rows, problems = [], []
        for i in indices:
            item = examples.items[i]
            # A text longer than max_length becomes overlapping windows rather than being truncated.
            enc = built.processor(item["text"], truncation=True, max_length=spec.max_length,
                                  stride=min(WINDOW_OVERLAP, spec.max_length // 4), return_overflowing_tokens=True,
                                  return_offsets_mapping=True)
            issues: list[str] = []
            placed: set[int] = set()
            for k, offsets in enumerate(enc["offset_mapping"]):
                tags, window_issues = _window_tags(offsets, item["entities"], placed)
                issues += [issue for issue in window_issues if issue not in issues]  # once, not once per window
                row = {key: enc[key][k] for key in enc if key not in ("offset_mapping", "overflow_to_sample_mapping")}
                rows.append({**row, "labels": [-100 if t is None else tag_ids[t] for t in tags]})
            issues += [f"entity {e['start']}-{e['end']} ({e['label']}) is longer than one window of "
                       f"{spec.max_length} tokens; dropped" for n, e in enumerate(item["entities"]) if n not in placed]
            where = item.get("where", f"line {item['line']}")
            problems += [{"row": item["line"], "reason": f"{where}: {issue}"} for issue in issues]
        return EncodedRows(rows), problems

    def collator(self, built: Built) -> Callable:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(built.processor)

    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        out: dict[str, Any] = {"task_type": "TOKEN_CLS", "modules_to_save": [self.head]}
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        if {"query", "value"} <= names:  # BERT-style naming (MiniLM, BERT, RoBERTa)
            out["target_modules"] = ["query", "value"]
            if method == "ia3":  # plus the feed-forward down-projection, scaled on its input as in the paper
                out["target_modules"] = r".*\.(query|value)|.*\.layer\.\d+\.output\.dense"
                out["feedforward_modules"] = r".*\.layer\.\d+\.output\.dense"
        return out  # other architectures: peft's per-model_type default targets

    @staticmethod
    def _sequences(logits: Any, label_ids: Any, labels: list[str]) -> tuple[list[list[str]], list[list[str]]]:
        tags = NerTask.tags(labels)
        preds, gold = np.asarray(logits).argmax(-1), np.asarray(label_ids)
        keep = gold != -100  # special tokens and padding
        return ([[tags[t] for t in g[k]] for g, k in zip(gold, keep)],
                [[tags[t] for t in p[k]] for p, k in zip(preds, keep)])

    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

        y, p = self._sequences(logits, label_ids, labels)
        return {"precision": float(precision_score(y, p, zero_division=0)),
                "recall": float(recall_score(y, p, zero_division=0)),
                "f1": float(f1_score(y, p, zero_division=0)), "token_accuracy": float(accuracy_score(y, p))}

    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        from seqeval.metrics import classification_report

        y, p = self._sequences(logits, label_ids, labels)
        per = classification_report(y, p, output_dict=True, zero_division=0)
        return {**self.eval_metrics(logits, label_ids, labels),
                "per_label": {label: {"precision": float(per[label]["precision"]),
                                      "recall": float(per[label]["recall"]), "f1": float(per[label]["f1-score"]),
                                      "support": int(per[label]["support"])} for label in labels if label in per},
                "n": len(y)}
