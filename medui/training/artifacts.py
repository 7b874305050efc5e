"""What a finished job leaves behind for the registry: weights as safetensors plus the JSON to rebuild the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from medui.registry.weights import ALLOWED_SUFFIXES
from medui.training.bases import BaseRef
from medui.training.spec import PEFT_METHODS, JobSpec
from medui.training.tasks.base import Built, TaskKind

ARCHITECTURE = "architecture.json"
TOKENIZER_DIR = "tokenizer"
SCRATCH_BASE = "base_model.safetensors"
# Which registered file holds the trained weights, per method (the rest is config, tokenizer or a base).
TRAINED_WEIGHTS = {"full": "model.safetensors", "head-only": "head.safetensors",
                   **{method: "adapter_model.safetensors" for method in (*PEFT_METHODS, "adapter")}}


def _save_tensors(tensors: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def save_scratch_base(model: nn.Module, final_dir: Path) -> Path:
    """A freshly initialised base exists nowhere else, so adapters and heads trained on it carry it along."""
    path = final_dir / SCRATCH_BASE
    _save_tensors(model.state_dict(), path)
    return path


def save_final(model: nn.Module, task: TaskKind, spec: JobSpec, built: Built, base: BaseRef, labels: list[str],
               final_dir: Path) -> dict[str, Path]:
    """Write the trained weights and their configs; returns registry-relative name -> file."""
    final_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if spec.method in PEFT_METHODS:
        # The adapter file also holds the modules_to_save copy of the head: the registered adapter is self-contained.
        model.save_pretrained(str(final_dir), safe_serialization=True)
        files.update({name: final_dir / name for name in ("adapter_model.safetensors", "adapter_config.json")})
    elif spec.method == "adapter":  # Houlsby: the same file names as peft's, rebuilt by serving (adapters.py)
        from medui.training.adapters import CONFIG_FILE, adapter_config, adapter_state

        _save_tensors(adapter_state(model, task.head), final_dir / TRAINED_WEIGHTS["adapter"])
        (final_dir / CONFIG_FILE).write_text(json.dumps(adapter_config(model), indent=2) + "\n", encoding="utf-8")
        files.update({name: final_dir / name for name in (TRAINED_WEIGHTS["adapter"], CONFIG_FILE)})
    elif spec.method == "head-only":
        prefix = task.head + "."
        _save_tensors({k: v for k, v in model.state_dict().items() if k.startswith(prefix)},
                      final_dir / "head.safetensors")
        files["head.safetensors"] = final_dir / "head.safetensors"
    else:
        _save_tensors(model.state_dict(), final_dir / "model.safetensors")
        files["model.safetensors"] = final_dir / "model.safetensors"
    if (final_dir / SCRATCH_BASE).is_file() and spec.method != "full":
        files[SCRATCH_BASE] = final_dir / SCRATCH_BASE
    if built.processor is not None:
        built.processor.save_pretrained(str(final_dir / TOKENIZER_DIR))
        for path in sorted((final_dir / TOKENIZER_DIR).iterdir()):
            if path.name.endswith(ALLOWED_SUFFIXES):  # the registry takes only plain-data files
                files[f"{TOKENIZER_DIR}/{path.name}"] = path
    arch = {"format": 1, "task": spec.task, "method": spec.method, "base": base.id, "labels": labels,
            "arch": built.arch}
    (final_dir / ARCHITECTURE).write_text(json.dumps(arch, indent=2, default=str) + "\n", encoding="utf-8")
    files[ARCHITECTURE] = final_dir / ARCHITECTURE
    return files
