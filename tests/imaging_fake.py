"""A stand-in for the registered chest-findings model, for CLI and page tests that mock the model boundary.

It is medui.imaging.classify's own Classifier (input contract, resizing, probabilities, findings list) around a tiny
untrained timm network instead of the registry's weights, so the real attribution and trust code runs on it fast.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

LABELS = ["effusion", "nodule"]


def fake_classifier(image_size: int = 64):
    import timm

    from medui.imaging.classify import Classifier
    from medui.training.tasks.image import ImageClassifier

    torch.manual_seed(0)
    backbone = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(LABELS))
    model = ImageClassifier(backbone, {"mean": [0.5] * 3, "std": [0.25] * 3, "image_size": image_size,
                                       "multilabel": True}).eval()
    for param in model.parameters():
        param.requires_grad_(False)  # as load_classifier leaves the shared model
    return Classifier(model, LABELS, SimpleNamespace(name="chest-findings", version="1"))


def random_lite0(image_size: int = 128):
    """The shipped architecture (timm tf_efficientnet_lite0 in ImageClassifier), seeded random weights."""
    from medui.training.tasks.image import ImageTask

    torch.manual_seed(0)
    return ImageTask().fresh({"image_size": image_size}, LABELS).eval()


def random_image(size: int = 128) -> torch.Tensor:
    return torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(1))
