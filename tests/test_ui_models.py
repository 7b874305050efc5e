"""The app's cached loader: verified weights once per version, and a promotion picked up without a restart."""

import torch
from safetensors.torch import save_file

from medui import registry
from medui.ui import models as loader


def register_version(tmp_path, value: float) -> str:
    path = tmp_path / f"weights-{value}.safetensors"
    save_file({"head.weight": torch.full((2, 3), value)}, str(path))
    mv = registry.register_version("demo", "ecg", {"model.safetensors": path}, base_model="none", method="full",
                                   labels=["a", "b"], metrics={}, provenance={"data_hash": "x"}, actor="test")
    return mv.version


def test_promotion_is_picked_up_on_the_next_call(tmp_path):
    first, second = register_version(tmp_path, 1.0), register_version(tmp_path, 2.0)
    registry.promote("demo", first, actor="test")
    version, weights = loader.production_weights("demo")
    assert version.version == first and weights["head.weight"][0, 0].item() == 1.0
    assert loader.production_weights("demo")[1] is weights  # cached, not reloaded

    registry.promote("demo", second, actor="test")  # e.g. from the CLI, in another process
    version, weights = loader.production_weights("demo")
    assert version.version == second and weights["head.weight"][0, 0].item() == 2.0
    loader.forget_loaded_models()
