"""The fine-tuning methods: full (optionally only the top layers), head-only, Houlsby adapters (adapters.py) and
the peft methods (LoRA, AdaLoRA, IA3)."""

from __future__ import annotations

from typing import Any

from torch import nn

from medui.training.errors import SpecError
from medui.training.spec import JobSpec
from medui.training.tasks.base import TaskKind


def adalora_schedule(total_steps: int) -> dict[str, int]:
    """Warm up on full rank for ~10% of the steps, prune ranks, then fix them for the last ~20%.

    peft needs tinit < total_step - tfinal; a final phase of at least one step makes it apply the
    final mask (force_mask) even on short runs.
    """
    tfinal = max(1, total_steps // 5) if total_steps >= 3 else 0
    return {"total_step": total_steps, "tinit": total_steps // 10, "tfinal": tfinal,
            "deltaT": max(1, total_steps // 20)}


def peft_config(spec: JobSpec, targets: dict[str, Any], total_steps: int) -> Any:
    from peft import AdaLoraConfig, IA3Config, LoraConfig

    common = {"target_modules": targets.get("target_modules"), "modules_to_save": targets.get("modules_to_save"),
              "task_type": targets.get("task_type")}
    if spec.method == "lora":
        return LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout, **common)
    if spec.method == "adalora":
        # Start at 1.5x the rank and let the importance scores decide where the budget goes.
        return AdaLoraConfig(init_r=max(2, round(spec.lora_r * 1.5)), target_r=spec.lora_r,
                             lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                             **adalora_schedule(total_steps), **common)
    if spec.method == "ia3":
        return IA3Config(feedforward_modules=targets.get("feedforward_modules"), **common)
    raise ValueError(f"{spec.method} is not a peft method")


def apply_method(model: nn.Module, task: TaskKind, spec: JobSpec, total_steps: int) -> nn.Module:
    """The model the trainer optimises: unchanged (full), head unfrozen only, or wrapped in a PeftModel."""
    if spec.method == "full":
        if spec.train_top_layers:
            freeze_below_top(model, task, spec.train_top_layers)
        return model
    if spec.method == "adapter":
        from medui.training.adapters import apply_adapters

        return apply_adapters(model, task, spec.adapter_size)
    if spec.method == "head-only":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(task.head + ".")
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config(spec, task.peft_targets(model, spec.method), total_steps))


def freeze_below_top(model: nn.Module, task: TaskKind, k: int) -> None:
    """Train the last `k` of the task's layers and every parameter registered after them (final norms, pooler,
    head), plus the head wherever it is; freeze the rest (embeddings, stem, lower layers).

    Registration order is the forward order in Hugging Face, timm and our ECG net, so "after the first parameter
    of layer L-k" is "above it".
    """
    layers = task.layers(model)
    if not layers:
        raise SpecError(f"train_top_layers: the {task.name} model has no layer stack to pick the top {k} from")
    if k > len(layers):
        raise SpecError(f"train_top_layers is {k} but the {task.name} model has {len(layers)} layers "
                        f"({layers[0]} ... {layers[-1]})")
    names = [name for name, _ in model.named_parameters()]
    first = next(i for i, name in enumerate(names) if name.startswith(layers[-k] + "."))
    for i, (name, param) in enumerate(model.named_parameters()):
        param.requires_grad = i >= first or name.startswith(task.head + ".")
    for module in model.modules():
        # A frozen batch norm's running statistics would still drift in train mode; momentum 0 keeps them.
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()):
            module.momentum = 0.0


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; for a PeftModel the total includes the frozen base."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def decay_parameter_names(model: nn.Module) -> list[str]:
    """Weight decay only on matrices and kernels (ndim >= 2), as in nanoGPT: never on biases or norm gains.

    IA3 scaling vectors and AdaLoRA's singular values are 2-D tensors but are per-channel gains that
    start at 1 (IA3) or carry the rank budget (AdaLoRA); decaying them toward 0 fights the method.
    """
    return [name for name, p in model.named_parameters()
            if p.ndim >= 2 and "ia3_" not in name and "lora_E" not in name]
