"""Which compute device models run on: CUDA, then Apple MPS, then CPU, unless MEDUI_DEVICE says otherwise."""

from __future__ import annotations

import os

import torch

VALID_DEVICES = ("cpu", "cuda", "mps")


def pick_device() -> str:
    override = os.environ.get("MEDUI_DEVICE", "").strip().lower()
    if override:
        base = override.split(":", 1)[0]
        if base not in VALID_DEVICES:
            raise ValueError(f"MEDUI_DEVICE must be one of {', '.join(VALID_DEVICES)} (optionally cuda:N), got {override!r}")
        if base == "cuda" and not torch.cuda.is_available():
            raise ValueError("MEDUI_DEVICE asks for CUDA, but no CUDA device is available")
        if base == "mps" and not torch.backends.mps.is_available():
            raise ValueError("MEDUI_DEVICE asks for MPS, but Apple MPS is not available")
        return override
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def inference_dtype(device: str, supports_half: bool = True) -> torch.dtype:
    """Half precision on a GPU where the model allows it; full precision on CPU, where fp16 is slow or unsupported."""
    if supports_half and device.startswith(("cuda", "mps")):
        return torch.float16
    return torch.float32


def describe(device: str) -> str:
    """A short human label for the sidebar."""
    if device.startswith("cuda"):
        return f"GPU ({torch.cuda.get_device_name(torch.device(device))})"
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({os.cpu_count()} cores)"
