"""Checks on weight files: digests, and refusing anything pickled before it reaches a deserializer."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from medui.registry.manifest import ModelVersion, RegistryError

if TYPE_CHECKING:
    import torch

# A pickle can run code when loaded, so only formats that are plain data are accepted:
# safetensors for weights, JSON/text/sentencepiece for configs and tokenizers.
ALLOWED_SUFFIXES = (".safetensors", ".json", ".txt", ".model")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_HEADER_BYTES = 100 * 1024 * 1024
_PICKLE_OPCODE = 0x80  # PROTO, the first byte of every pickle since protocol 2
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save has written zip archives (holding a pickle) since 1.6
# One INFO line per weight file read from disk: the load test counts them to prove a model is loaded once per
# server process, not once per session (MEDUI_LOG_LEVEL=INFO shows them; see medui.bootstrap).
log = logging.getLogger("medui.registry")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pickle_message(path: Path, label: str) -> str | None:
    """Why a file's first bytes look like a pickled checkpoint, or None."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:1] == bytes([_PICKLE_OPCODE]):
        return f"{label} holds a pickle payload, refused: convert it to safetensors"
    if head == _ZIP_MAGIC:
        return f"{label} is a torch.save (zip/pickle) checkpoint, refused: convert it to safetensors"
    return None


def refuse_pickled(path: Path, label: str | None = None) -> None:
    """Raise when a non-safetensors file is named or shaped like a pickled checkpoint."""
    label = label or path.name
    if path.name.lower().endswith(PICKLE_SUFFIXES):
        raise RegistryError(f"pickled checkpoint ({label}) refused: convert it to safetensors")
    message = _pickle_message(path, label)
    if message:
        raise RegistryError(message)


def check_allowed(relative: str) -> None:
    """Refuse paths that escape the version folder or have a suffix we would not load."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or not pure.parts:
        raise RegistryError(f"file path {relative!r} is not inside the model folder")
    if relative.lower().endswith(PICKLE_SUFFIXES):
        raise RegistryError(f"pickled checkpoint ({relative}) refused: convert it to safetensors")
    if not relative.lower().endswith(ALLOWED_SUFFIXES):
        raise RegistryError(f"{relative}: only {', '.join(ALLOWED_SUFFIXES)} files are allowed in a model")


def _parse_header(path: Path, label: str) -> None:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise RegistryError(f"{label} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise RegistryError(f"{label} has an invalid safetensors header (length {length}, file {size} bytes)")
        header = handle.read(length)
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(f"{label} has an invalid safetensors header (not JSON)") from None
    if not isinstance(parsed, dict):
        raise RegistryError(f"{label} has an invalid safetensors header (not a JSON object)")


def check_safetensors_header(path: Path, label: str | None = None) -> None:
    """The first 8 bytes give the JSON header length; a bogus one would make the reader allocate wildly."""
    label = label or path.name
    try:
        _parse_header(path, label)
    except RegistryError:
        # A valid header may itself start with 0x80 (length 128), so the pickle sniff only names the
        # cause once the file has already failed to parse as safetensors.
        pickled = _pickle_message(path, label)
        if pickled:
            raise RegistryError(pickled) from None
        raise


def check_file(path: Path, relative: str) -> None:
    """All checks a file must pass before it may enter the registry under the name `relative`."""
    check_allowed(relative)
    if relative.lower().endswith(".safetensors"):
        check_safetensors_header(path, relative)
    else:
        refuse_pickled(path, relative)


def verify_files(mv: ModelVersion) -> None:
    """Every listed file must exist, be an allowed kind, and match the manifest's size and sha256."""
    where = f"{mv.name} version {mv.version}"
    for entry in mv.files:
        check_allowed(entry.path)
        path = mv.directory / entry.path
        if not path.is_file():
            raise RegistryError(f"{where}: file {entry.path} is missing")
        # Size first: a cheap way to catch truncation without hashing gigabytes.
        if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
            raise RegistryError(f"{where}: file {entry.path} does not match its manifest sha256 (modified or corrupt)")


def _pick_weight_files(mv: ModelVersion, filename: str | None) -> list[str]:
    names = [f.path for f in mv.weight_files]
    if filename is not None:
        if filename not in {f.path for f in mv.files}:
            raise RegistryError(f"{mv.name} version {mv.version} has no file {filename}")
        if not filename.endswith(".safetensors"):
            raise RegistryError(f"{filename}: weights are loaded only from .safetensors files")
        return [filename]
    if not names:
        raise RegistryError(f"{mv.name} version {mv.version} has no .safetensors weights")
    if len(names) == 1:
        return names
    if "model.safetensors" in names:
        return ["model.safetensors"]
    index = mv.directory / "model.safetensors.index.json"
    if "model.safetensors.index.json" in {f.path for f in mv.files}:
        # A sharded Hugging Face checkpoint: the index says which shards make up the model.
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing = [s for s in shards if s not in names]
        if missing or not shards:
            raise RegistryError(f"{mv.name} version {mv.version}: shard index lists unknown files {missing}")
        return shards
    raise RegistryError(f"{mv.name} version {mv.version} has several weight files; pass one of: {', '.join(names)}")


def load_state_dict(mv: ModelVersion, device: str = "cpu", filename: str | None = None) -> dict[str, torch.Tensor]:
    """Verified tensors of a version: digests checked, then safetensors only, never unpickling."""
    from safetensors.torch import load_file  # imported late: torch is slow to import and not always needed

    verify_files(mv)
    tensors: dict[str, torch.Tensor] = {}
    for relative in _pick_weight_files(mv, filename):
        path = mv.directory / relative
        check_safetensors_header(path, relative)
        try:
            loaded = load_file(str(path), device=device)
        except Exception as exc:  # safetensors/torch errors become one readable line
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError(f"could not load {relative} of {mv.name} version {mv.version}: {message}") from exc
        clash = tensors.keys() & loaded.keys()
        if clash:
            raise RegistryError(f"{relative} repeats tensors already loaded: {sorted(clash)[:3]}")
        tensors.update(loaded)
        log.info("loaded weights %s/%s %s from disk", mv.name, mv.version, relative)
    return tensors
