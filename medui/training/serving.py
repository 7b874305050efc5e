"""Rebuild a registered, trained version for inference; weights come only through registry.load_state_dict."""

from __future__ import annotations

import json
from typing import Any

from torch import nn

from medui.registry import ModelVersion, RegistryError, get_version, load_state_dict, verify_files
from medui.training.artifacts import ARCHITECTURE, SCRATCH_BASE, TOKENIZER_DIR, TRAINED_WEIGHTS
from medui.training.bases import SCRATCH_ID, resolve_base
from medui.training.tasks import get_task


def _version(model_version: ModelVersion | str, version: str | int | None) -> ModelVersion:
    return model_version if isinstance(model_version, ModelVersion) else get_version(model_version, version)


def _load(model: nn.Module, tensors: dict, what: str, strict: bool = True) -> None:
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or (strict and missing):
        raise RegistryError(f"{what} does not fit the architecture (missing {sorted(missing)[:3]}, "
                            f"unexpected {sorted(unexpected)[:3]})")


def load_imported_encoder(mv: ModelVersion, heads: dict[str, Any]) -> nn.Module:
    """A token classifier whose encoder comes from an imported Hugging Face folder (ner or mlm)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    verify_files(mv)  # config.json is read below: it must be the file the manifest describes
    model = AutoModelForTokenClassification.from_config(AutoConfig.from_pretrained(str(mv.directory), **heads))
    tensors = load_state_dict(mv)
    prefix = model.base_model_prefix + "."
    if not any(k.startswith(prefix) for k in tensors):  # a bare encoder checkpoint (e.g. sentence-transformers)
        tensors = {prefix + k: v for k, v in tensors.items()}
    own = model.state_dict()
    fitting = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    missing, _ = model.load_state_dict(fitting, strict=False)
    if any(not k.startswith("classifier.") for k in missing):
        raise RegistryError(f"{mv.name} version {mv.version}: its weights do not fit a token classifier "
                            f"(missing {sorted(missing)[:3]})")
    return model


def load_tokenizer(model_version: ModelVersion | str, version: str | int | None = None) -> Any:
    """The fast tokenizer saved with a ner version (or an imported folder's own)."""
    from transformers import AutoTokenizer

    mv = _version(model_version, version)
    verify_files(mv)
    folder = mv.directory / TOKENIZER_DIR
    return AutoTokenizer.from_pretrained(str(folder if folder.is_dir() else mv.directory))


def _base_model(mv: ModelVersion, task: Any, arch: dict[str, Any]) -> nn.Module:
    if arch["base"] == SCRATCH_ID:
        model = task.fresh(arch["arch"], mv.labels)
        _load(model, load_state_dict(mv, filename=SCRATCH_BASE), f"{mv.name}/{mv.version} base")
        return model
    base = resolve_base(mv.task, arch["base"], task.accepted_bases)
    return task.base_model(base, mv.labels, arch["arch"])


def load_for_inference(model_version: ModelVersion | str, version: str | int | None = None, *, merge: bool = False,
                       device: str = "cpu") -> tuple[nn.Module, list[str]]:
    """(model in eval mode, class labels) for a version trained by `medui.training`.

    Full models are rebuilt from architecture.json and loaded whole. Adapters are put back on their base
    (a package, the registry, or the scratch base stored with them) and, with `merge`, folded into it.
    Houlsby adapters (method "adapter") have a nonlinearity and cannot be folded: `merge` leaves them in place.
    """
    mv = _version(model_version, version)
    verify_files(mv)  # architecture.json and adapter_config.json are read as JSON below: check their digests first
    names = {f.path for f in mv.files}
    if ARCHITECTURE not in names or mv.method not in TRAINED_WEIGHTS:
        raise RegistryError(f"{mv.name} version {mv.version} was not trained by medui.training "
                            f"(method {mv.method}); load it with its task's own loader")
    arch = json.loads((mv.directory / ARCHITECTURE).read_text(encoding="utf-8"))
    task = get_task(mv.task)
    weights = TRAINED_WEIGHTS[mv.method]
    if mv.method == "full":
        model = task.fresh(arch["arch"], mv.labels)
        _load(model, load_state_dict(mv, filename=weights), f"{mv.name}/{mv.version}")
    elif mv.method == "adapter":
        from medui.training.adapters import CONFIG_FILE, add_adapters

        config = json.loads((mv.directory / CONFIG_FILE).read_text(encoding="utf-8"))
        try:
            model = add_adapters(_base_model(mv, task, arch), config["sites"], config["size"])
        except AttributeError as exc:
            raise RegistryError(f"{mv.name}/{mv.version} adapters do not fit their base ({exc})") from None
        tensors = load_state_dict(mv, filename=weights)
        _load(model, tensors, f"{mv.name}/{mv.version} adapters", strict=False)
        lacking = [name for name, _ in model.named_parameters() if ".adapter." in name and name not in tensors]
        if lacking:
            raise RegistryError(f"{mv.name}/{mv.version} adapter file lacks {lacking[0]}")
    elif mv.method == "head-only":
        model = _base_model(mv, task, arch)
        _load(model, load_state_dict(mv, filename=weights), f"{mv.name}/{mv.version} head", strict=False)
    else:
        from peft import PeftConfig, get_peft_model, set_peft_model_state_dict

        raw = PeftConfig.from_json_file(str(mv.directory / "adapter_config.json"))
        # AdaLoRA's rank_pattern is a per-module mask applied when its weights load, not per-module ranks
        # to build with; handing it to get_peft_model only earns a "keys did not match" warning.
        rank_pattern = raw.get("rank_pattern") if raw.get("peft_type") == "ADALORA" else None
        config = PeftConfig.from_peft_type(**{**raw, "inference_mode": True,
                                              **({"rank_pattern": None} if rank_pattern else {})})
        model = get_peft_model(_base_model(mv, task, arch), config)
        if rank_pattern:
            model.peft_config["default"].rank_pattern = rank_pattern  # used by the load below to shrink modules
        result = set_peft_model_state_dict(model, load_state_dict(mv, filename=weights))
        if result.unexpected_keys:
            raise RegistryError(f"{mv.name}/{mv.version} adapter does not fit its base "
                                f"(unexpected {sorted(result.unexpected_keys)[:3]})")
        if merge:
            model = model.merge_and_unload()
    return model.to(device).eval(), list(mv.labels)
