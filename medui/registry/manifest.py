"""The manifest.json of one model version: what it holds, how it was made, and how to check it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("ner", "image", "ecg", "mlm", "risk")
STAGES = ("candidate", "production", "archived")
METHODS = ("full", "lora", "adalora", "ia3", "adapter", "head-only", "imported")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1

# Names become folder names, so they are kept to a safe slug (no "..", no separators).
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class RegistryError(Exception):
    """A one-line, user-facing registry failure."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a version, relative to its folder, with the digest it must still have."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as read from its manifest plus its stage."""

    name: str
    version: str
    task: str
    base_model: str
    method: str
    labels: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    created_at: str = ""
    stage: str = "candidate"
    directory: Path = Path(".")
    shipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, used by `--json` and the admin page; parameter counts come from training metrics."""
        data = asdict(self)
        data["directory"] = str(self.directory)
        training = self.metrics.get("training") if isinstance(self.metrics.get("training"), dict) else {}
        data["trainable_params"] = training.get("trainable_params")
        data["total_params"] = training.get("total_params")
        return data

    @property
    def weight_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.path.endswith(".safetensors")]


def slugify(text: str) -> str:
    """A folder-safe model name from free text (a folder or file stem)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")
    return slug[:128]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryError(f"invalid model name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    return name


def check_version(version: str | int) -> str:
    """Versions are positive whole numbers kept as strings ("1", "2", ...)."""
    text = str(version).strip()
    if text.isdigit() and text.lstrip("0"):
        text = text.lstrip("0")
    if not _VERSION_RE.match(text):
        raise RegistryError(f"invalid version {version!r}: versions are positive whole numbers")
    return text


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise RegistryError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _file_entry(raw: Any) -> FileEntry:
    if not isinstance(raw, dict):
        raise ValueError("file entries must be objects")
    path, digest, size = raw.get("path"), raw.get("sha256"), raw.get("bytes")
    if not isinstance(path, str) or not path:
        raise ValueError("file entry without a path")
    if not isinstance(digest, str) or not _SHA_RE.match(digest):
        raise ValueError(f"file {path}: sha256 must be 64 lower-case hex digits")
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"file {path}: bytes must be a non-negative whole number")
    return FileEntry(path=path, sha256=digest, bytes=size)


def read_manifest(directory: Path, shipped: bool, stage: str | None = None) -> ModelVersion:
    """Parse `directory/manifest.json`; raise ValueError on anything malformed.

    `stage` comes from the database when it has a row; otherwise the manifest's optional
    "stage" field (shipped models may declare a default) and finally "candidate".
    """
    raw = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("manifest is not a JSON object")
    name, version = raw.get("name"), str(raw.get("version", ""))
    # The folder layout is the index; a manifest claiming another identity is a copy-paste mistake.
    if name != directory.parent.name or version != directory.name:
        raise ValueError(f"manifest says {name}/{version} but lives in {directory.parent.name}/{directory.name}")
    task, method = raw.get("task"), raw.get("method", "full")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise ValueError("manifest lists no files")
    labels = raw.get("labels") or []
    if not isinstance(labels, list):
        raise ValueError("labels must be a list")
    metrics, provenance = raw.get("metrics") or {}, raw.get("provenance") or {}
    if not isinstance(metrics, dict) or not isinstance(provenance, dict):
        raise ValueError("metrics and provenance must be objects")
    declared = raw.get("stage")
    if stage is None:
        stage = declared if declared in STAGES else "candidate"
    return ModelVersion(
        name=name, version=version, task=task, base_model=str(raw.get("base_model") or ""), method=method,
        labels=[str(label) for label in labels], files=[_file_entry(f) for f in files], metrics=metrics,
        provenance=provenance, created_at=str(raw.get("created_at") or ""), stage=stage,
        directory=directory, shipped=shipped,
    )


def write_manifest(directory: Path, data: dict[str, Any]) -> None:
    """Write manifest.json and flush it to disk before the folder is renamed into place."""
    body = json.dumps({"format": MANIFEST_FORMAT, **data}, indent=2, sort_keys=True, ensure_ascii=False)
    path = directory / MANIFEST
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())
