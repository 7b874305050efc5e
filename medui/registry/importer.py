"""Reading a local Hugging Face folder or a timm .safetensors file into what `register_version` takes."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from medui.registry.manifest import RegistryError, slugify
from medui.registry.weights import ALLOWED_SUFFIXES, PICKLE_SUFFIXES, check_file, sha256_file

log = logging.getLogger(__name__)

_GENERIC_STEMS = ("model", "pytorch_model", "weights", "open_clip_model")


@dataclass
class ImportSource:
    """The files to copy (name in the version folder -> source path) and what the source says about itself."""

    files: dict[str, Path]
    default_name: str
    source_sha256: str
    labels: list[str] = field(default_factory=list)
    base_model: str = ""


def _labels(config: dict) -> list[str]:
    """Labels in class-index order from a Hugging Face config's id2label, when it has one."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return []
    try:
        ordered = sorted(id2label.items(), key=lambda item: int(item[0]))
    except (TypeError, ValueError):
        return []
    return [str(label) for _, label in ordered]


def _combined_sha(files: dict[str, Path]) -> str:
    """One digest for a folder: the sorted names with each file's own sha256."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(f"{relative}\0{sha256_file(files[relative])}\n".encode())
    return digest.hexdigest()


def _from_folder(folder: Path) -> ImportSource:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise RegistryError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(f"{config_path} is not valid JSON") from None
    if not isinstance(config, dict):
        raise RegistryError(f"{config_path} is not a JSON object")
    entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    weights = [p for p in entries if p.name.endswith(".safetensors")]
    pickled = [p for p in entries if p.name.lower().endswith(PICKLE_SUFFIXES)]
    if not weights:
        if pickled:
            raise RegistryError(f"pickled checkpoint ({pickled[0].name}) refused: convert it to safetensors")
        raise RegistryError(f"{folder} holds no .safetensors weights")
    if pickled:
        # Hub folders often carry both formats; the pickled copy is simply left behind.
        log.warning("not importing pickled files next to safetensors: %s", ", ".join(p.name for p in pickled))
    files: dict[str, Path] = {}
    for path in entries:
        if path.name.lower().endswith(ALLOWED_SUFFIXES):
            check_file(path, path.name)
            files[path.name] = path
        elif not path.name.lower().endswith(PICKLE_SUFFIXES):
            log.info("not importing %s (not a weight, config or tokenizer file)", path.name)
    return ImportSource(files=files, default_name=slugify(folder.name), source_sha256=_combined_sha(files),
                        labels=_labels(config), base_model=str(config.get("_name_or_path") or folder.name))


def read_source(path: Path) -> ImportSource:
    """Check and describe an import source; nothing is copied here."""
    if not path.exists():
        raise RegistryError(f"no such file or folder: {path}")
    if path.is_dir():
        return _from_folder(path)
    if not path.name.endswith(".safetensors"):
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            raise RegistryError(f"pickled checkpoint ({path.name}) refused: convert it to safetensors")
        raise RegistryError(f"{path.name}: import a Hugging Face folder or a .safetensors file")
    check_file(path, path.name)
    stem = path.name[: -len(".safetensors")]
    # "model.safetensors" says nothing; its folder (e.g. a timm hub snapshot) usually does.
    named = path.parent.name if stem in _GENERIC_STEMS and path.parent.name else stem
    return ImportSource(files={path.name: path}, default_name=slugify(named), source_sha256=sha256_file(path),
                        base_model=stem)
