"""The plug-in contract: what a task kind must say about its data, its model and its metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import Dataset

    from medui.training.bases import BaseRef
    from medui.training.data import Examples
    from medui.training.spec import JobSpec


def text_tokenizer(base: Any) -> Any:
    """The tokenizer of a text base: a registered version's copy, or the one in the package folder."""
    from transformers import AutoTokenizer

    from medui.training.errors import SpecError
    from medui.training.serving import load_tokenizer

    try:
        return load_tokenizer(base.version) if base.version else AutoTokenizer.from_pretrained(str(base.path))
    except OSError as exc:
        raise SpecError(f"base {base.id} has no usable tokenizer ({exc})") from None


# Names the repeated-layer container has in Hugging Face and timm models: BERT's encoder.layer, GPT's h,
# timm's blocks (ViT blocks, EfficientNet stages), Llama's layers.
_STACK_NAMES = ("layer", "layers", "blocks", "h")


def layer_stack(model: nn.Module) -> list[str]:
    """Module names of the model's repeated layers, input to output (e.g. bert.encoder.layer.0 ... .5).

    The longest ModuleList/Sequential with a stack name and numbered children; [] when there is none.
    """
    from torch import nn

    best: list[str] = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _STACK_NAMES and isinstance(module, (nn.ModuleList, nn.Sequential)):
            children = [child for child, _ in module.named_children()]
            if len(children) > len(best) and all(child.isdigit() for child in children):
                best = [f"{name}.{child}" for child in children]
    return best


@dataclass
class Built:
    """A model ready for a method to be applied, and what encodes inputs for it."""

    model: nn.Module
    processor: Any = None  # ner: the fast tokenizer; ecg: None
    arch: dict[str, Any] = field(default_factory=dict)  # rebuilds the bare architecture (architecture.json)


class TaskKind(ABC):
    """One trainable task. Subclasses are registered by name in `medui.training.tasks.TASK_KINDS`."""

    name: ClassVar[str]  # also the registry task
    default_name: ClassVar[str]  # registry name when the spec gives none
    sample_path: ClassVar[Path]
    default_lr: ClassVar[dict[str, float]]
    head: ClassVar[str]  # the classifier module: trained by head-only, kept whole (modules_to_save) by peft
    accepted_bases: ClassVar[tuple[str, ...]]  # registry tasks a base may come from
    accepts_folder: ClassVar[bool] = False  # whether `data` may be a folder (mlm: of .txt files)

    @abstractmethod
    def read(self, path: Path, spec: JobSpec) -> Examples:
        """Parse and validate the file; DatasetError for a file that cannot be used, rejections for bad rows."""

    @abstractmethod
    def base_model(self, base: BaseRef, labels: list[str], info: dict[str, Any]) -> nn.Module:
        """The base with its pretrained weights and a head sized for `labels` (fresh if the labels are new)."""

    @abstractmethod
    def build(self, base: BaseRef, labels: list[str], info: dict[str, Any], spec: JobSpec) -> Built:
        """`base_model` plus its input processor and the facts that rebuild the bare architecture."""

    @abstractmethod
    def fresh(self, arch: dict[str, Any], labels: list[str]) -> nn.Module:
        """The bare architecture (random weights), for loading a registered full state dict into."""

    @abstractmethod
    def encode(self, built: Built, examples: Examples, indices: list[int],
               spec: JobSpec) -> tuple[Dataset, list[dict[str, Any]]]:
        """A torch Dataset of model inputs with "labels", plus problems to report (e.g. unaligned entities)."""

    @abstractmethod
    def collator(self, built: Built) -> Callable:
        """Batches encoded examples."""

    @abstractmethod
    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        """target_modules, modules_to_save, task_type, feedforward_modules for the peft config of `method`."""

    def layers(self, model: nn.Module) -> list[str]:
        """The model's layers, input to output, for top-k freezing; a task overrides it where the
        generic guess (`layer_stack`) does not fit its architecture."""
        return layer_stack(model)

    @classmethod
    def learning_rate(cls, method: str) -> float:
        """The task's default peak learning rate for `method`.

        A task without an adapter rate gets its LoRA rate: both are small, near-zero-initialised residual
        modules on a frozen base, so they tolerate similar rates.
        """
        return cls.default_lr.get(method) or cls.default_lr["lora"]

    @abstractmethod
    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        """Flat scalar metrics logged at every evaluation (TensorBoard cannot show nested ones)."""

    @abstractmethod
    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        """The full test-split report registered with the model."""
