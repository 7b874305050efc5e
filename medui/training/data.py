"""What every task's dataset reader returns, and the seeded, stratified train/validation/test split."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from medui.registry.weights import sha256_file
from medui.training.errors import DatasetError

# Below this, a label cannot appear in training, validation and test and still leave something to learn from.
MIN_PER_LABEL = 5
SPLITS = ("train", "validation", "test")


@dataclass
class Examples:
    """A validated dataset: one item per accepted row, plus what was learned about it while reading."""

    items: list[Any]  # ecg: float32 [leads, samples]; ner: {"text", "entities", "line"}
    keys: list[str]  # the stratification key of each item (ecg: its class; ner: its rarest entity type)
    labels: list[str]  # the model's classes (ecg: rhythm classes; ner: entity types, before BIO)
    counts: dict[str, int]  # examples per label (ner: entity mentions per type)
    rows: int  # rows read, accepted or not
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"row": n, "reason": "..."}
    info: dict[str, Any] = field(default_factory=dict)  # task-specific facts (ecg: leads, samples, fs)


def settle_rejections(rejected: list[dict[str, Any]], skip_bad_rows: bool) -> None:
    """Bad rows fail the job unless the spec says to drop them: silently training on half a file is worse."""
    if rejected and not skip_bad_rows:
        more = f" ({len(rejected) - 1} more bad rows; skip_bad_rows drops them)" if len(rejected) > 1 else ""
        raise DatasetError(rejected[0]["reason"] + more)


def check_counts(counts: dict[str, int], what: str = "examples") -> None:
    if len(counts) < 2 and what == "examples":
        raise DatasetError(f"need at least 2 classes to train a classifier, found {sorted(counts) or 'none'}")
    if not counts:
        raise DatasetError(f"the dataset has no labelled {what}")
    for label, count in sorted(counts.items(), key=lambda kv: kv[1]):
        if count < MIN_PER_LABEL:
            raise DatasetError(f"label {label!r} has only {count} {what}; each label needs at least {MIN_PER_LABEL}")


def split(keys: list[str], seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[int]]:
    """Indices per split, stratified on `keys`; keys too rare to stratify are folded into the commonest one."""
    counts = Counter(keys)
    common = counts.most_common(1)[0][0]
    strata = np.array([k if counts[k] >= 3 else common for k in keys])
    n, n_classes = len(keys), len(set(strata))
    n_test, n_val = max(n_classes, math.ceil(n * test_fraction)), max(n_classes, math.ceil(n * val_fraction))
    if n - n_test - n_val < n_classes:
        raise DatasetError(f"only {n} usable examples: too few to hold out validation and test sets")
    index = np.arange(n)
    rest, test = train_test_split(index, test_size=n_test, stratify=strata, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=strata[rest], random_state=seed)
    return {"train": sorted(train.tolist()), "validation": sorted(val.tolist()), "test": sorted(test.tolist())}


def dataset_sha256(path: Path) -> str:
    """A file's sha256; for a folder dataset (mlm), the sha256 of its files' relative names and digests."""
    if path.is_file():
        return sha256_file(path)
    import hashlib

    listing = "".join(f"{p.relative_to(path).as_posix()}:{sha256_file(p)}\n"
                      for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


def report(examples: Examples, path: Path, splits: dict[str, list[int]]) -> dict[str, Any]:
    """The validation summary written to dataset.json and shown before training."""
    return {
        "path": str(path), "sha256": dataset_sha256(path), "rows": examples.rows, "accepted": len(examples.items),
        "rejected": examples.rejected, "labels": examples.labels, "counts": examples.counts,
        "splits": {name: dict(Counter(examples.keys[i] for i in idx)) for name, idx in splits.items()},
        "sizes": {name: len(idx) for name, idx in splits.items()}, **examples.info,
    }
