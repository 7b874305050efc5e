"""The one cached model loader of the app: keyed by name, version and device, so a promotion is a new key."""

from __future__ import annotations

import streamlit as st
import torch

from medui import registry
from medui.ui.shell import compute_device


@st.cache_resource(max_entries=8, show_spinner="Loading model weights…")
def _verified_weights(name: str, version: str, device: str) -> dict[str, torch.Tensor]:
    return registry.load_state_dict(registry.get_version(name, version), device=device)


def production_weights(name: str) -> tuple[registry.ModelVersion, dict[str, torch.Tensor]]:
    """The production version of `name` and its sha256-checked weights, loaded once per process and version.

    The production version is looked up on every call, so a promotion (from the Admin page or the CLI,
    in any process) is picked up on the next page run without a restart.
    """
    version = registry.get_version(name)
    return version, _verified_weights(name, version.version, compute_device())


def forget_loaded_models() -> None:
    """Free the cached weights after a promotion or rollback in this process."""
    _verified_weights.clear()
