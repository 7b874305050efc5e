"""Houlsby bottleneck adapters (Houlsby et al. 2019) for BERT-style encoders, written here on purpose.

Why hand-written: AdapterHub's `adapters` package (1.3.0) pins transformers ~=4.57 and we run transformers 5.24;
peft has no bottleneck adapter (its "adaption_prompt" is LLaMA-Adapter, a prompt method). The method is small:
after the attention output projection and after the feed-forward output projection of every layer, a residual
bottleneck (down-project, GELU, up-project initialised at zero, so training starts from the base model exactly)
runs before the layer's own residual + LayerNorm. Adapters, every LayerNorm and the head train; the base is frozen.

Adapters have a nonlinearity, so unlike LoRA they cannot be merged into the base weights: a registered adapter
version is always served as base + adapters.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

CONFIG_FILE = "adapter_config.json"
# BERT, RoBERTa, ELECTRA, MiniLM: layer.N.attention.output.dense (attention) and layer.N.output.dense (feed-forward)
_SITE = re.compile(r"(^|\.)layer\.\d+\.(attention\.output|output)\.dense$")


class Bottleneck(nn.Module):
    """x + up(gelu(down(x))); `up` starts at zero, so a new adapter is the identity."""

    def __init__(self, hidden: int, size: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        nn.init.normal_(self.down.weight, std=1e-2)  # near-zero, as in the paper
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


class AdaptedLinear(nn.Module):
    """A frozen projection followed by its adapter (the projection keeps its weights under `.base`)."""

    def __init__(self, base: nn.Linear, size: int) -> None:
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(base.out_features, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base(x))


def adapter_sites(model: nn.Module) -> list[str]:
    """Names of the Linear projections that get an adapter: two per transformer layer."""
    return [name for name, module in model.named_modules() if _SITE.search(name) and isinstance(module, nn.Linear)]


def has_adapters(model: nn.Module) -> bool:
    return any(isinstance(module, AdaptedLinear) for module in model.modules())


def add_adapters(model: nn.Module, sites: list[str], size: int) -> nn.Module:
    """Wrap each site in place; returns the model."""
    for name in sites:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        adapted = AdaptedLinear(linear, size).to(device=linear.weight.device, dtype=linear.weight.dtype)
        setattr(parent, child, adapted)
    return model


def trained_names(model: nn.Module, head: str) -> set[str]:
    """Parameter names an adapter job trains and saves: adapters, every LayerNorm, the head."""
    norms = {f"{name}." for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
    return {name for name, _ in model.named_parameters()
            if ".adapter." in name or name.startswith(tuple(norms)) or name.startswith(head + ".")}


def apply_adapters(model: nn.Module, task: Any, size: int) -> nn.Module:
    """Freeze the base, insert adapters, unfreeze adapters + LayerNorms + head."""
    from medui.training.errors import SpecError

    if has_adapters(model):
        raise SpecError("the base already carries Houlsby adapters, which cannot be merged into it: start from "
                        "the model that version was trained from instead")
    sites = adapter_sites(model)
    if not sites:
        raise SpecError(f"adapter: the {task.name} model has no transformer layers (BERT-style attention and "
                        "feed-forward output projections) to put Houlsby adapters in; use lora or full")
    for param in model.parameters():
        param.requires_grad = False
    add_adapters(model, sites, size)
    train = trained_names(model, task.head)
    for name, param in model.named_parameters():
        param.requires_grad = name in train
    return model


def adapter_config(model: nn.Module) -> dict[str, Any]:
    """What rebuilds the adapters on a fresh base (adapter_config.json)."""
    found = {name: module for name, module in model.named_modules() if isinstance(module, AdaptedLinear)}
    sizes = {module.adapter.down.out_features for module in found.values()}
    return {"type": "houlsby", "size": sizes.pop(), "activation": "gelu", "sites": sorted(found)}


def adapter_state(model: nn.Module, head: str) -> dict[str, torch.Tensor]:
    """What an adapter version stores: the trained tensors only (the base comes from its own source)."""
    train = trained_names(model, head)
    return {name: value for name, value in model.state_dict().items() if name in train}
