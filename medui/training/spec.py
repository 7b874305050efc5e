"""The job spec: every knob of one training run, with help text, checked before any weights are loaded."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medui.registry.manifest import RegistryError, check_name
from medui.training.errors import SpecError

# The registry also knows "imported"; that is not something this trainer produces.
METHODS = ("full", "lora", "adalora", "ia3", "adapter", "head-only")
PEFT_METHODS = ("lora", "adalora", "ia3")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class JobSpec:
    """One fine-tuning job. Load it from JSON with `JobSpec.from_json`; `help_text()` documents every field."""

    task: str = field(metadata={"help": "what to train: ecg (rhythm classes of fixed-length signal windows), "
                                        "ner (entity spans in clinical text), image (classes of DICOM/PNG images) "
                                        "or mlm (continued pretraining of the text encoder on unlabelled notes)"})
    method: str = _opt("lora", "full, lora, adalora, ia3, adapter (Houlsby bottleneck adapters in every transformer "
                               "layer: ner) or head-only (train only the classification head)")
    data: str = _opt("", "dataset file (ecg: .npz, a .zip of class folders of CSV recordings or a path,label[,fs] "
                         ".csv manifest; ner: .jsonl spans, CoNLL BIO or a BRAT .zip; image: .zip or "
                         ".csv; mlm: .txt, one note a line, or a .zip or folder of .txt files); empty = the task's bundled "
                         "synthetic sample")
    base: str = _opt("default", "starting weights: 'default' (ner: offline MiniLM; ecg: fresh 1-D ResNet) or a "
                                "registered model as NAME or NAME/VERSION")
    name: str = _opt("", "registry name of the trained model; empty = the name the task's clinical page serves "
                         "(ecg-rhythm, chest-findings, notes-ner; mlm: notes-mlm)")
    epochs: float = _opt(3.0, "passes over the training split (ignored when max_steps > 0)")
    max_steps: int = _opt(0, "stop after this many optimizer steps; 0 = run `epochs` epochs")
    lr: float | None = _opt(None, "peak learning rate; empty = the task's default for the method")
    batch_size: int = _opt(8, "examples per device batch")
    grad_accum: int = _opt(1, "batches whose gradients are summed before each optimizer step")
    weight_decay: float = _opt(0.01, "AdamW weight decay, applied to weight matrices only (not biases or norms)")
    warmup_ratio: float = _opt(0.1, "share of the steps spent warming the learning rate up from 0 (then linear decay)")
    seed: int = _opt(0, "seed for the split, the initial weights and the batch order")
    eval_steps: int = _opt(0, "evaluate and checkpoint every N steps; 0 = at the end of every epoch")
    logging_steps: int = _opt(10, "write a metrics.jsonl line (loss, lr) every N steps")
    patience: int = _opt(3, "stop after this many evaluations without a better validation loss; 0 = never")
    val_fraction: float = _opt(0.15, "share of the examples held out for validation (stratified)")
    test_fraction: float = _opt(0.15, "share of the examples held out for the final test metrics (stratified)")
    max_length: int = _opt(128, "ner: tokens per training window; longer texts are split into overlapping windows")
    fs: float = _opt(0.0, "ecg recordings: sampling rate (Hz) of files that have no time column and no fs in the "
                          "manifest; 0 = each must state its own")
    image_size: int = _opt(0, "image: pixels per side the images are resized to; 0 = the task default (224)")
    lora_r: int = _opt(8, "lora/adalora rank (adalora: the final average rank; it starts at 1.5x)")
    lora_alpha: int = _opt(16, "lora/adalora scaling numerator (scale = alpha / r)")
    lora_dropout: float = _opt(0.05, "dropout on the adapter input")
    adapter_size: int = _opt(64, "adapter: bottleneck width of each Houlsby adapter (hidden -> size -> hidden)")
    train_top_layers: int = _opt(0, "full: train only the last K layers (transformer layers, image blocks, ECG "
                                    "stages) and everything above them, head included; 0 = every layer")
    skip_bad_rows: bool = _opt(False, "drop malformed rows (listed in dataset.json) instead of failing the job")

    def __post_init__(self) -> None:
        from medui.training.tasks import TASK_KINDS  # the plug-in table; imported here to keep this module light

        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), str(f.type)))
        if self.task not in TASK_KINDS:
            raise SpecError(f"unknown task {self.task!r}: use one of {', '.join(sorted(TASK_KINDS))}")
        if self.method not in METHODS:
            raise SpecError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        kind = TASK_KINDS[self.task]
        _positive(self, "batch_size", "grad_accum", "logging_steps", "max_length", "lora_r", "lora_alpha",
                  "adapter_size")
        _not_negative(self, "max_steps", "eval_steps", "patience", "weight_decay", "seed", "train_top_layers")
        if self.train_top_layers and self.method != "full":
            raise SpecError(f"train_top_layers works with method full, not {self.method} (set it to 0)")
        if self.fs and not (50 <= self.fs <= 10000):
            raise SpecError(f"fs must be 0 (from each recording) or between 50 and 10000 Hz, got {self.fs:g}")
        if self.image_size and not (32 <= self.image_size <= 1024):
            raise SpecError(f"image_size must be 0 (task default) or between 32 and 1024, got {self.image_size}")
        if self.max_steps == 0 and not (0 < self.epochs <= 1000):
            raise SpecError(f"epochs must be between 0 and 1000 (or set max_steps), got {self.epochs}")
        if self.lr is None:
            self.lr = kind.learning_rate(self.method)
        if not (0 < self.lr < 1):
            raise SpecError(f"lr must be between 0 and 1, got {self.lr}")
        if not (0 <= self.warmup_ratio < 1) or not (0 <= self.lora_dropout < 1):
            raise SpecError("warmup_ratio and lora_dropout must be in [0, 1)")
        if not (0 < self.val_fraction < 0.5 and 0 < self.test_fraction < 0.5
                and self.val_fraction + self.test_fraction < 0.6):
            raise SpecError("val_fraction and test_fraction must each be in (0, 0.5) and leave 40% for training")
        self.name = self.name or kind.default_name
        try:
            check_name(self.name)
        except RegistryError as exc:
            raise SpecError(f"name: {exc}") from None
        path = Path(self.data).expanduser() if self.data else kind.sample_path
        if path.is_dir() and not kind.accepts_folder:
            raise SpecError(f"data: {path} is a folder; {self.task} datasets are a single file")
        if not (path.is_file() or path.is_dir()):
            raise SpecError(f"data: no such file: {path}")
        self.data = str(path.resolve())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JobSpec:
        if not isinstance(raw, dict):
            raise SpecError("a job spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(f"unknown spec field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        if "task" not in raw:
            raise SpecError("a job spec needs a task (ecg or ner)")
        return cls(**raw)

    @classmethod
    def from_json(cls, path: str | Path) -> JobSpec:
        return cls.from_dict(read_json(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def help_text(cls) -> dict[str, str]:
        """Field name -> help (with the default), for forms and --help."""
        out = {}
        for f in fields(cls):
            default = "required" if f.default is MISSING else f"default {f.default!r}"
            out[f.name] = f"{f.metadata['help']} ({default})"
        return out


def read_json(path: str | Path) -> Any:
    """A spec file's raw content, with one-line errors."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _coerce(name: str, value: Any, kind: str) -> Any:
    """JSON gives ints for floats and people give strings for everything: accept the first, refuse the second."""
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        wanted = kind.split(" ")[0].replace("str", "text").replace("int", "whole number").replace("float", "number")
        raise SpecError(f"{name} must be a {wanted}, got {value!r}")
    return value


def _positive(spec: JobSpec, *names: str) -> None:
    for name in names:
        if getattr(spec, name) <= 0:
            raise SpecError(f"{name} must be positive, got {getattr(spec, name)}")


def _not_negative(spec: JobSpec, *names: str) -> None:
    for name in names:
        if getattr(spec, name) < 0:
            raise SpecError(f"{name} must not be negative, got {getattr(spec, name)}")
