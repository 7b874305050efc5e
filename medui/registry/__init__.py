"""The model registry: versions under the shipped `models/` and `$MEDUI_HOME/models`, stages in the database.

Layout: `<root>/<name>/<version>/manifest.json` plus the files it lists. The shipped root is read-only at
run time, so every stage change lives in the `model_stages` table, never in a manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from medui import audit
from medui import config as _config
from medui.auth import require_role
from medui.registry.importer import read_source
from medui.registry.manifest import (
    MANIFEST,
    METHODS,
    STAGES,
    TASKS,
    FileEntry,
    ModelVersion,
    RegistryError,
    check_choice,
    check_name,
    check_version,
    read_manifest,
    write_manifest,
)
from medui.registry.weights import check_allowed, check_file, load_state_dict, verify_files
from medui.store import session_scope
from medui.store.models import ModelPromotion, ModelStage

__all__ = [
    "TASKS", "STAGES", "METHODS", "RegistryError", "FileEntry", "ModelVersion", "roots", "list_versions",
    "get_version", "production_versions", "stage_of", "promote", "rollback", "register_version",
    "import_model", "verify_files", "load_state_dict",
]

log = logging.getLogger(__name__)

# Marks the ModelPromotion rows a rollback wrote, so history replays as a stack (see `_history_stack`).
_ROLLBACK_NOTE = "[rollback] from version "
_BASELINE_NOTE = "[baseline] in production by its manifest before any recorded promotion"


def roots() -> list[tuple[Path, bool]]:
    """(folder, shipped) pairs, shipped first; read at call time so tests can point them elsewhere."""
    return [(Path(_config.SHIPPED_MODELS_DIR), True), (_config.settings().trained_models_dir, False)]


def _is_version_dir(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit() and not path.name.startswith("0")


def _version_dirs(name: str | None = None) -> list[tuple[Path, bool]]:
    found = []
    for root, shipped in roots():
        if not root.is_dir():
            continue
        for model_dir in sorted(root.iterdir()):
            if not model_dir.is_dir() or model_dir.name.startswith(".") or (name and model_dir.name != name):
                continue
            found += [(d, shipped) for d in model_dir.iterdir() if _is_version_dir(d)]
    return found


def _db_stages(name: str | None = None) -> dict[tuple[str, str], str]:
    query = select(ModelStage.name, ModelStage.version, ModelStage.stage)
    if name:
        query = query.where(ModelStage.name == name)
    with session_scope() as session:
        return {(n, v): s for n, v, s in session.execute(query)}


def list_versions(name: str | None = None) -> list[ModelVersion]:
    """Every readable version in both roots, by name then version; broken manifests are skipped, not fatal."""
    if name is not None:
        check_name(name)
    stages = _db_stages(name)
    found: dict[tuple[str, str], ModelVersion] = {}
    for directory, shipped in _version_dirs(name):
        key = (directory.parent.name, directory.name)
        if key in found:
            log.warning("ignoring %s: %s version %s already exists in %s", directory, *key, found[key].directory)
            continue
        try:
            found[key] = read_manifest(directory, shipped, stages.get(key))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # One bad folder must not take the model list (and the sidebar) down with it.
            log.warning("skipping model %s/%s: unreadable %s (%s)", *key, MANIFEST, exc)
    return sorted(found.values(), key=lambda mv: (mv.name, int(mv.version)))


def _known(versions: list[ModelVersion]) -> str:
    return ", ".join(sorted({mv.name for mv in versions})) or "none"


def get_version(name: str, version: str | int | None = None) -> ModelVersion:
    """One version, or the production one when `version` is None."""
    versions = list_versions(check_name(name))
    if not versions:
        raise RegistryError(f"no model named {name} (registered models: {_known(list_versions())})")
    if version is None:
        production = [mv for mv in versions if mv.stage == "production"]
        if not production:
            raise RegistryError(f"no production version of {name}")
        return production[-1]
    version = check_version(version)
    for mv in versions:
        if mv.version == version:
            return mv
    raise RegistryError(f"{name} has no version {version} (versions: {', '.join(mv.version for mv in versions)})")


def production_versions() -> dict[str, str]:
    """name -> the version in production, for the sidebar and the loaders."""
    # Sorted ascending, so if two ever claim production the newest wins, as in `get_version`.
    return {mv.name: mv.version for mv in list_versions() if mv.stage == "production"}


def stage_of(name: str, version: str | int) -> str:
    """The database row wins; else the manifest's optional "stage"; else "candidate"."""
    name, version = check_name(name), check_version(version)
    stage = _db_stages(name).get((name, version))
    if stage:
        return stage
    for root, _shipped in roots():
        path = root / name / version / MANIFEST
        if path.is_file():
            try:
                declared = json.loads(path.read_text(encoding="utf-8")).get("stage")
            except (OSError, ValueError, AttributeError):
                declared = None
            return declared if declared in STAGES else "candidate"
    return "candidate"


def _set_stage(session, name: str, version: str, stage: str, actor: str) -> None:
    row = session.scalars(select(ModelStage).where(ModelStage.name == name, ModelStage.version == version)).first()
    if row is None:
        session.add(ModelStage(name=name, version=version, stage=stage, changed_by=actor))
    else:
        row.stage, row.changed_by, row.changed_at = stage, actor, datetime.now(timezone.utc)


def _make_production(name: str, version: str, previous: list[str], actor: str, note: str, action: str,
                     baseline: str | None = None) -> None:
    """One transaction: archive whatever was in production, promote `version`, append to the history, and the
    audit event (`action`) with them.

    `baseline` is a version that was in production without a recorded promotion (a shipped manifest
    declaring "stage": "production"); writing it into the history first lets a rollback return to it.
    """
    with session_scope() as session:
        # Lock the model's stage rows first: under PostgreSQL's READ COMMITTED two promotions of one model would
        # otherwise both commit "production" (SQLite's BEGIN IMMEDIATE already serialises them).
        session.scalars(select(ModelStage.version).where(ModelStage.name == name).with_for_update()).all()
        if baseline is not None:
            session.add(ModelPromotion(name=name, version=baseline, promoted_by=actor, note=_BASELINE_NOTE))
        # Also archive production rows this process did not see (a concurrent promotion).
        raced = session.scalars(select(ModelStage.version).where(
            ModelStage.name == name, ModelStage.stage == "production", ModelStage.version != version)).all()
        for old in sorted(set(previous) | set(raced)):
            _set_stage(session, name, old, "archived", actor)
        _set_stage(session, name, version, "production", actor)
        session.add(ModelPromotion(name=name, version=version, promoted_by=actor, note=note))
        audit.append(session, actor, action, model=name, version=version, previous=previous[-1] if previous else None)


def _verified(mv: ModelVersion, actor: str, action: str) -> None:
    """verify_files, with a refused audit row when the files were tampered with."""
    try:
        verify_files(mv)
    except RegistryError as exc:
        audit.record(actor, action, outcome="refused", model=mv.name, version=mv.version, reason=str(exc))
        raise


def promote(name: str, version: str | int, actor: str, note: str = "") -> ModelVersion:
    """Make a verified version the production one; the previous production version is archived."""
    require_role(actor, "admin", "model_promote")
    mv = get_version(name, version)
    if note.startswith(("[rollback]", "[baseline]")):
        raise RegistryError("a promotion note may not start with '[rollback]' or '[baseline]'")
    if mv.stage == "production":
        raise RegistryError(f"{name} version {mv.version} is already in production")
    _verified(mv, actor, "model_promote")
    previous = [v.version for v in list_versions(name) if v.stage == "production"]
    history = _history_stack(name)
    baseline = previous[-1] if previous and (not history or history[-1] != previous[-1]) else None
    _make_production(name, mv.version, previous, actor, note, "model_promote", baseline)
    return get_version(name, mv.version)


def _history_stack(name: str) -> list[str]:
    """Replay promotions as a stack: a promotion pushes, a rollback pops back to its target.

    So rolling back twice steps back twice, and a version that was rolled back from is never
    the target of a later rollback.
    """
    with session_scope() as session:
        rows = session.execute(select(ModelPromotion.version, ModelPromotion.note)
                               .where(ModelPromotion.name == name).order_by(ModelPromotion.id)).all()
    stack: list[str] = []
    for version, note in rows:
        if (note or "").startswith(_ROLLBACK_NOTE):
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
        else:
            stack.append(version)
    return stack


def rollback(name: str, actor: str) -> ModelVersion:
    """Put back the version that was in production before the current one; the current one is archived."""
    require_role(actor, "admin", "model_rollback")
    current = get_version(name)
    present = {mv.version for mv in list_versions(name)}
    stack = _history_stack(name)
    while stack and (stack[-1] == current.version or stack[-1] not in present):
        stack.pop()
    if not stack:
        raise RegistryError(f"nothing to roll back to: no earlier production version of {name} is still registered")
    target = get_version(name, stack[-1])
    _verified(target, actor, "model_rollback")
    _make_production(name, target.version, [current.version], actor, _ROLLBACK_NOTE + current.version,
                     "model_rollback")
    return get_version(name, target.version)


def _max_version(name: str) -> int:
    """Highest version folder in either root, readable manifest or not, so numbers are never reused."""
    return max((int(d.name) for d, _ in _version_dirs(name)), default=0)


def _copy_hashed(source: Path, dest: Path) -> tuple[str, int]:
    """Copy and hash in one pass, and flush, so the manifest describes exactly the bytes on disk."""
    digest, size = hashlib.sha256(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(dest, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_ready(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise RegistryError(f"{what} must be JSON-serializable") from None


def _register(name: str, task: str, files: dict[str, Path], *, base_model: str, method: str, labels: list[str],
              metrics: dict, provenance: dict, actor: str, action: str) -> ModelVersion:
    check_name(name)
    check_choice(task, TASKS, "task")
    check_choice(method, METHODS, "method")
    if not files:
        raise RegistryError("a model version needs at least one file")
    for relative, source in files.items():
        check_allowed(relative)  # by name first, before copying gigabytes
        if not Path(source).is_file():
            raise RegistryError(f"no such file: {source}")
    if not any(relative.endswith(".safetensors") for relative in files):
        raise RegistryError("a model version needs at least one .safetensors weight file")
    labels = [str(label) for label in labels]
    metrics, provenance = _json_ready(metrics or {}, "metrics"), _json_ready(provenance or {}, "provenance")

    model_dir = _config.settings().trained_models_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    # Build the version in a hidden folder and rename it into place: readers never see half a version.
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        entries = []
        for relative, source in sorted(files.items()):
            digest, size = _copy_hashed(Path(source), staging / relative)
            check_file(staging / relative, relative)  # checked on the copy, so a swapped source cannot slip in
            entries.append(FileEntry(path=relative, sha256=digest, bytes=size))
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        for _attempt in range(20):
            version = str(_max_version(name) + 1)
            write_manifest(staging, {
                "name": name, "version": version, "task": task, "base_model": base_model or "", "method": method,
                "labels": labels, "files": [e.__dict__ for e in entries], "metrics": metrics,
                "provenance": provenance, "created_at": created_at,
            })
            target = model_dir / version
            if target.exists():
                continue  # another process took this number between the scan and now
            try:
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    continue
                raise
            break
        else:
            raise RegistryError(f"could not allocate a new version number for {name}")
        _fsync_dir(model_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    with session_scope() as session:
        _set_stage(session, name, version, "candidate", actor)
        audit.append(session, actor, action, model=name, version=version, task=task, method=method,
                     files=len(entries), source_sha256=provenance.get("source_sha256"))
    return get_version(name, version)


def register_version(name: str, task: str, files: dict[str, Path], *, base_model: str, method: str,
                     labels: list[str], metrics: dict, provenance: dict, actor: str) -> ModelVersion:
    """Copy files into a new candidate version under $MEDUI_HOME/models/<name>/<next version>/."""
    return _register(name, task, files, base_model=base_model, method=method, labels=labels, metrics=metrics,
                     provenance=provenance, actor=actor, action="model_register")


def import_model(path: Path, task: str, actor: str, name: str | None = None,
                 base_model: str | None = None) -> ModelVersion:
    """Register a local Hugging Face folder or a single (timm) .safetensors file as a candidate."""
    require_role(actor, "admin", "model_import")
    check_choice(task, TASKS, "task")
    path = Path(path).expanduser()
    source = read_source(path.resolve())
    name = name or source.default_name
    if not name:
        raise RegistryError(f"cannot derive a model name from {path}: pass one")
    provenance = {"source": str(path), "imported_by": actor, "source_sha256": source.source_sha256}
    return _register(name, task, source.files, base_model=base_model or source.base_model, method="imported",
                     labels=source.labels, metrics={}, provenance=provenance, actor=actor, action="model_import")
