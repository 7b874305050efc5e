"""Domain-adaptive continued pretraining: masked language modelling of a text encoder on unlabelled notes.

The registered version is a base that `ner` jobs can start from (`base: NAME[/VERSION]`): bases.py turns it into
a plain encoder folder (model.safetensors + config.json + tokenizer files, a lora adapter merged in) with
`export_encoder` below.

The offline MiniLM package ships BertModel weights only: loaded with AutoModelForMaskedLM, the MLM head's transform
layer (dense + LayerNorm) and its output bias start untrained, and the decoder is tied to the word embeddings. The
head is initialised under a fixed seed, so that a lora version (whose adapter does not carry the head) rebuilds the
same model; the note is also kept in the registered metrics and architecture.json (MLM_HEAD_NOTE).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from medui.training.bases import BaseRef
from medui.training.data import Examples
from medui.training.errors import DatasetError, SpecError
from medui.training.tasks.base import Built, TaskKind, text_tokenizer
from medui.training.tasks.ner import EncodedRows

MLM_PROBABILITY = 0.15
METHODS = ("full", "lora")
HEAD_SEED = 0  # the untrained MLM head's initialisation (see the module docstring)
MLM_HEAD_NOTE = ("base ships BertModel weights only: the MLM head transform layer and bias started untrained "
                 f"(seed {HEAD_SEED}), the decoder is tied to the word embeddings")
TEXT_SUFFIXES = (".txt",)


class MaskedLM(nn.Module):
    """An AutoModelForMaskedLM whose outputs are the loss and, as "logits", each token's negative log-likelihood.

    Per-token NLL (0 where not masked) instead of [batch, tokens, vocabulary] logits keeps evaluation, the test
    predictions and perplexity small. Tied parameters (decoder = word embeddings) appear once in state_dict, so that
    safetensors can store it, and are not reported missing when it is loaded back.
    """

    def __init__(self, mlm: nn.Module) -> None:
        super().__init__()
        self.mlm = mlm
        self.config = mlm.config
        seen: dict[int, str] = {}
        self._tied: list[str] = []
        for key, value in mlm.state_dict(keep_vars=True).items():
            if id(value) in seen:
                self._tied.append(key)
            else:
                seen[id(value)] = key
        self._register_state_dict_hook(_drop_tied)
        self.register_load_state_dict_post_hook(_forgive_tied)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> dict[str, Any]:
        out = self.mlm(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = out.logits
        if labels is None:
            return {"logits": logits}
        nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
        nll = nll.view(labels.shape)
        masked = labels != -100
        loss = nll.sum() / masked.sum().clamp(min=1)
        return {"loss": loss, "logits": nll.detach()}


def _drop_tied(module: MaskedLM, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for key in module._tied:
        state_dict.pop(f"{prefix}mlm.{key}", None)


def _forgive_tied(module: MaskedLM, incompatible: Any) -> None:
    tied = tuple(f"mlm.{key}" for key in module._tied)
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not k.endswith(tied)]


def _lines(data: bytes, where: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines; NUL bytes or non-UTF-8 refuse the file, naming the line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if b"\x00" in raw:
            raise DatasetError(f"{where} line {number}: contains NUL bytes (binary data), not text")
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DatasetError(f"{where} line {number}: not UTF-8 text; save it as UTF-8 and upload it again") \
                from None
        if text:
            out.append((number, text))
    return out


def _is_text_file(name: str) -> bool:
    """A .txt that is not in Finder's resource forks or a hidden file or folder (.git, .ipynb_checkpoints)."""
    parts = name.split("/")
    return name.lower().endswith(TEXT_SUFFIXES) and parts[0] != "__MACOSX" and not any(
        part.startswith(".") for part in parts)


def read_notes(path: Path) -> list[dict[str, Any]]:
    """Notes from a .txt file (one a line), or every .txt file of a .zip (checked like an upload before reading)
    or of a folder and its subfolders."""
    from medui.uploads.archives import inspect_zip
    from medui.uploads.errors import UploadRejected

    if path.is_dir():
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        names = [name for name in names if _is_text_file(name)]
        if not names:
            raise DatasetError(f"{path.name}: the folder holds no .txt files")
        notes = [{"text": text, "file": name, "line": n} for name in names
                 for n, text in _lines((path / name).read_bytes(), f"{path.name}/{name}")]
        if not notes:
            raise DatasetError(f"{path.name}: no text (every .txt file is empty or blank)")
        return notes
    data = path.read_bytes()
    if path.suffix.lower() == ".zip":
        try:
            entries = inspect_zip(data)
        except UploadRejected as exc:
            raise DatasetError(f"{path.name}: {exc}") from None
        names = sorted(e.name for e in entries if _is_text_file(e.name))
        if not names:
            raise DatasetError(f"{path.name}: the archive holds no .txt files")
        notes = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in names:
                notes += [{"text": text, "file": name, "line": n}
                          for n, text in _lines(archive.read(name), f"{path.name}:{name}")]
    elif path.suffix.lower() in TEXT_SUFFIXES:
        notes = [{"text": text, "file": path.name, "line": n} for n, text in _lines(data, path.name)]
    else:
        raise DatasetError(f"{path.name}: mlm datasets are plain UTF-8 text, one note a line (.txt), "
                           "or a .zip of .txt files")
    if not notes:
        raise DatasetError(f"{path.name}: no text (the file is empty or blank)")
    return notes


class MlmTask(TaskKind):
    name = "mlm"
    default_name = "notes-mlm"
    sample_path = Path(__file__).resolve().parent.parent / "samples" / "notes_unlabelled.txt"
    # head-only, adalora and ia3 are refused in read(); listed so that JobSpec resolves a learning rate first.
    default_lr: ClassVar[dict[str, float]] = {
        "full": 5e-5, "lora": 1e-3, "head-only": 1e-3, "adalora": 1e-3, "ia3": 1e-2}
    head = "mlm.cls"
    accepted_bases = ("mlm",)
    accepts_folder = True

    def read(self, path: Path, spec: Any) -> Examples:
        if spec.method == "adapter":
            raise SpecError("mlm does not support adapter: Houlsby adapters cannot be merged into the encoder, so the "
                            "result could not become a plain ner base; use full or lora")
        if spec.method not in METHODS:
            raise SpecError(f"mlm supports the methods {', '.join(METHODS)}, not {spec.method}")
        notes = read_notes(path)
        n = len(notes)
        return Examples(items=notes, keys=["note"] * n, labels=[], counts={"notes": n}, rows=n,
                        info={"notes": n, "files": len({note["file"] for note in notes}),
                              "characters": sum(len(note["text"]) for note in notes)})

    def base_model(self, base: BaseRef, labels: list[str], info: dict[str, Any]) -> nn.Module:
        from transformers import AutoModelForMaskedLM

        if base.kind == "package":
            with torch.random.fork_rng(devices=[]):  # the untrained head: the same on every rebuild
                torch.manual_seed(HEAD_SEED)
                return MaskedLM(AutoModelForMaskedLM.from_pretrained(str(base.path)))
        if base.version.method == "imported":
            raise SpecError(f"base {base.id}: continued pretraining from an imported model is not supported yet")
        from medui.training.serving import load_for_inference

        model, _ = load_for_inference(base.version, merge=True)
        return model.train()

    def build(self, base: BaseRef, labels: list[str], info: dict[str, Any], spec: Any) -> Built:
        model = self.base_model(base, labels, info)
        tokenizer = text_tokenizer(base)
        return Built(model=model, processor=tokenizer, arch={"config": model.mlm.config.to_dict(),
                                                             "max_length": spec.max_length,
                                                             "mlm_head": MLM_HEAD_NOTE})

    def fresh(self, arch: dict[str, Any], labels: list[str]) -> nn.Module:
        from transformers import AutoConfig, AutoModelForMaskedLM

        config = dict(arch["config"])
        return MaskedLM(AutoModelForMaskedLM.from_config(AutoConfig.for_model(config.pop("model_type"), **config)))

    def encode(self, built: Built, examples: Examples, indices: list[int], spec: Any) -> tuple[Dataset, list]:
        rows = [dict(built.processor(examples.items[i]["text"], truncation=True, max_length=spec.max_length))
                for i in indices]
        return EncodedRows(rows), []

    def collator(self, built: Built) -> Callable:
        from transformers import DataCollatorForLanguageModeling

        inner = DataCollatorForLanguageModeling(built.processor, mlm=True, mlm_probability=MLM_PROBABILITY)

        def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
            for _ in range(20):  # a tiny batch can draw no masked token at all: its loss would be 0/0
                batch = inner([dict(f) for f in features])
                if (batch["labels"] != -100).any():
                    break
            return batch

        return collate

    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        # No modules_to_save: the tied decoder would be copied away from the embeddings. The adapter is merged
        # into the encoder when the version becomes a ner base (bases.py -> export_encoder).
        return {"task_type": None, "modules_to_save": None, "target_modules": ["query", "value"]}

    @staticmethod
    def _nll(logits: Any, label_ids: Any) -> tuple[float, int]:
        nll, gold = np.asarray(logits, dtype=np.float64), np.asarray(label_ids)
        masked = gold != -100
        count = int(masked.sum())
        return (float(nll[masked].sum() / count) if count else float("nan")), count

    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        loss, count = self._nll(logits, label_ids)
        return {"mlm_loss": loss, "perplexity": float(math.exp(min(loss, 50.0))) if count else float("nan"),
                "masked_tokens": float(count)}

    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        metrics = self.eval_metrics(logits, label_ids, labels)
        return {"loss": metrics["mlm_loss"], "perplexity": metrics["perplexity"],
                "masked_tokens": int(metrics["masked_tokens"]), "n": len(np.asarray(label_ids)),
                "mlm_probability": MLM_PROBABILITY, "mlm_head": MLM_HEAD_NOTE}


def export_encoder(mv: Any, folder: Path) -> Path:
    """A registered mlm version as a plain encoder folder (adapter merged): model.safetensors, config.json and the
    tokenizer files, loadable with AutoModelForTokenClassification.from_pretrained(folder)."""
    from medui.training.serving import load_for_inference, load_tokenizer

    model, _ = load_for_inference(mv, merge=True)
    folder.mkdir(parents=True, exist_ok=True)
    model.mlm.base_model.save_pretrained(str(folder), safe_serialization=True)
    load_tokenizer(mv).save_pretrained(str(folder))
    return folder
