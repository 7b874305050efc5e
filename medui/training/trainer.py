"""The Trainer: AdamW decay grouped by tensor shape, and checkpoints that round-trip AdaLoRA's rank allocation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from transformers import Trainer

from medui.training.methods import decay_parameter_names

_RANK_PATTERN = "adalora_rank_pattern.json"
_IMPORTANCE = "adalora_importance.safetensors"


def _adalora_config(model: Any) -> Any:
    config = getattr(model, "peft_config", {}).get("default") if hasattr(model, "peft_config") else None
    return config if config is not None and config.peft_type == "ADALORA" else None


@contextmanager
def _unpruned(model: Any) -> Iterator[Any]:
    """Hide AdaLoRA's rank pattern while a checkpoint is written or read.

    With a pattern set, peft prunes the saved tensors to the surviving ranks and shrinks the modules
    when loading. The model in training stays full size (pruned ranks are zeroed singular values), so a
    pruned checkpoint would not load back into it, for resume or for the best model. Checkpoints are
    therefore kept full size, with the pattern alongside; only the final adapter is pruned.
    """
    config = _adalora_config(model)
    pattern = config.rank_pattern if config is not None else None
    if config is not None:
        config.rank_pattern = None
    try:
        yield pattern
    finally:
        if config is not None:
            config.rank_pattern = pattern


class MedTrainer(Trainer):
    """Trainer whose AdamW groups decay by tensor shape, and whose checkpoints round-trip AdaLoRA."""

    def get_decay_parameter_names(self, model) -> list[str]:
        return decay_parameter_names(model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        with _unpruned(self.model) as pattern:
            super()._save(output_dir, state_dict)
        if _adalora_config(self.model) is not None:
            _save_allocator(Path(output_dir or self.args.output_dir), self.model, pattern)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        with _unpruned(self.model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        _load_allocator(Path(resume_from_checkpoint), self.model, importance=True)

    def _load_best_model(self) -> None:
        with _unpruned(self.model):
            super()._load_best_model()
        if self.state.best_model_checkpoint:  # the final adapter is pruned with the best checkpoint's pattern
            _load_allocator(Path(self.state.best_model_checkpoint), self.model, importance=False)


_SCORES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def _save_allocator(folder: Path, model: Any, pattern: Any) -> None:
    """AdaLoRA's rank pattern and its importance averages: without them a resumed run cannot allocate."""
    (folder / _RANK_PATTERN).write_text(json.dumps(pattern), encoding="utf-8")
    allocator = model.base_model.rankallocator
    scores = {f"{kind}|{name}": t.detach().cpu().contiguous() for kind in _SCORES
              for name, t in getattr(allocator, kind).items()}
    if scores:
        save_file(scores, str(folder / _IMPORTANCE))


def _load_allocator(folder: Path, model: Any, importance: bool) -> None:
    config = _adalora_config(model)
    if config is None or not (folder / _RANK_PATTERN).is_file():
        return
    config.rank_pattern = json.loads((folder / _RANK_PATTERN).read_text(encoding="utf-8"))
    if importance and (folder / _IMPORTANCE).is_file():
        allocator = model.base_model.rankallocator
        device = next(model.parameters()).device
        for key, tensor in load_file(str(folder / _IMPORTANCE)).items():
            kind, name = key.split("|", 1)
            getattr(allocator, kind)[name] = tensor.to(device)
