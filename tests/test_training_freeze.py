"""Top-k layer freezing (method full, train_top_layers K): which layers each task exposes, that only the top K
layers plus everything above them get gradients, and that a job leaves the lower layers exactly as they were."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from medui.registry import get_version, load_state_dict
from medui.training import JobSpec, SpecError, run_job
from medui.training.bases import minilm_path
from medui.training.ecgnet import EcgNet
from medui.training.methods import apply_method, count_params
from medui.training.tasks import get_task
from medui.training.tasks.base import layer_stack

FAST = {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "logging_steps": 1, "max_length": 32}


def _minilm_classifier():
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(str(minilm_path()), num_labels=3)


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_each_task_names_its_layers_input_to_output():
    import timm

    assert layer_stack(_minilm_classifier()) == [f"bert.encoder.layer.{i}" for i in range(6)]
    assert get_task("ecg").layers(EcgNet(2, 3)) == ["stem", "blocks.0", "blocks.1", "blocks.2"]
    # timm EfficientNet: the 7 stages (each a Sequential of blocks), not the blocks inside one stage
    effnet = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    assert layer_stack(effnet) == [f"blocks.{i}" for i in range(7)]
    assert layer_stack(torch.nn.Sequential(torch.nn.Linear(2, 2))) == []


def test_only_the_top_layers_and_the_head_get_gradients():
    model = _minilm_classifier()
    apply_method(model, get_task("ner"), JobSpec(task="ner", method="full", train_top_layers=2), 10)
    trainable = _trainable(model)
    assert trainable and all(n.startswith(("bert.encoder.layer.4.", "bert.encoder.layer.5.", "classifier."))
                             for n in trainable)
    assert any(n.startswith("bert.encoder.layer.4.") for n in trainable) and "classifier.weight" in trainable
    ids = torch.randint(1000, 2000, (2, 8))
    model(input_ids=ids, labels=torch.zeros_like(ids)).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable


def test_ecg_top_stage_trains_the_last_block_embed_and_head():
    model = EcgNet(1, 2)
    apply_method(model, get_task("ecg"), JobSpec(task="ecg", method="full", train_top_layers=1), 10)
    assert {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("blocks") else "") for n in _trainable(model)} \
        == {"blocks.2", "embed", "head"}
    trainable, total = count_params(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters()
                            if n.startswith(("blocks.2.", "embed.", "head.")))
    assert trainable < total


def test_frozen_batch_norms_keep_their_running_statistics():
    import timm

    from medui.training.tasks.image import ImageClassifier

    backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    model = ImageClassifier(backbone, {"mean": [0.5] * 3, "std": [0.5] * 3, "num_labels": 2})
    apply_method(model, get_task("image"), JobSpec(task="image", method="full", train_top_layers=1), 10)
    low, top = model.backbone.bn1, model.backbone.blocks[6][0].bn1
    before_low, before_top = low.running_mean.clone(), top.running_mean.clone()
    model.train()(torch.rand(2, 3, 64, 64))
    assert torch.equal(low.running_mean, before_low)
    assert not torch.equal(top.running_mean, before_top)
    assert "backbone.classifier.weight" in _trainable(model) and "backbone.conv_head.weight" in _trainable(model)
    assert "backbone.blocks.5.0.conv_pw.weight" not in _trainable(model)


@pytest.mark.parametrize("fields, message", [
    ({"method": "lora", "train_top_layers": 2}, "train_top_layers works with method full, not lora"),
    ({"method": "full", "train_top_layers": -1}, "train_top_layers must not be negative"),
])
def test_spec_refuses_top_layers_outside_full(fields, message):
    with pytest.raises(SpecError, match=message):
        JobSpec(task="ner", **fields)


def test_more_layers_than_the_model_has_is_refused():
    with pytest.raises(SpecError, match="train_top_layers is 9 but the ner model has 6 layers"):
        apply_method(_minilm_classifier(), get_task("ner"), JobSpec(task="ner", method="full", train_top_layers=9), 1)


@pytest.mark.slow
def test_a_top_k_job_changes_only_the_top_layers_and_the_head(shipped_models):
    result = run_job(JobSpec(task="ner", method="full", train_top_layers=2, **FAST))
    assert result["status"] == "completed" and result["trainable_params"] < result["total_params"] / 3
    mv = get_version("notes-ner", result["version"])
    assert mv.method == "full" and mv.provenance["spec"]["train_top_layers"] == 2
    trained = {k.removeprefix("bert."): v for k, v in load_state_dict(mv).items()}
    original = load_file(str(minilm_path() / "model.safetensors"))
    shared = sorted(set(original) & set(trained))  # the token classifier has no pooler
    assert len(shared) > 90
    for key in shared:
        value = original[key]
        top = key.startswith(("encoder.layer.4.", "encoder.layer.5."))
        if top and key.endswith("weight") and value.ndim == 2:
            assert not torch.equal(trained[key], value), key
        elif not top:
            assert torch.equal(trained[key], value), key
