"""What the Training admin page shows, without Streamlit: presets, saved uploads, the dataset preview, metrics.jsonl
as curves, the log tail, and a candidate's metrics side by side with the production version of the same model."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medui import config as _config

# Hyperparameter presets; the page's advanced expander overrides any of these.
PRESETS: dict[str, dict[str, Any]] = {
    "quick check": {"max_steps": 20, "epochs": 1.0, "eval_steps": 10, "logging_steps": 2},
    "standard": {"max_steps": 0, "epochs": 3.0, "eval_steps": 0, "logging_steps": 10},
    "thorough": {"max_steps": 0, "epochs": 10.0, "eval_steps": 0, "logging_steps": 10},
}
# Dataset files per task (the task readers decide by suffix) and the most bytes an upload of each may have.
DATASET_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ecg": (".npz", ".zip", ".csv"), "ner": (".jsonl", ".ndjson", ".conll", ".bio", ".iob", ".txt", ".zip"),
    "image": (".zip", ".csv"), "mlm": (".txt", ".zip"),
}
_UPLOAD_KIND = {".jsonl": "text", ".ndjson": "text", ".conll": "text", ".bio": "text", ".iob": "text",
                ".txt": "text", ".zip": "zip", ".csv": "csv"}
NPZ_MAX_BYTES = 512 * 2 ** 20
# A dataset zip may hold far more files than the upload guard's default 5,000; the total is the image reader's limit.
DATASET_ZIP_ENTRIES, DATASET_ZIP_BYTES = 200_000, 8 * 2 ** 30
# Headline metrics, in the order reports and comparisons show them (lower is better for brier and loss).
HEADLINE = {"ecg": ("accuracy", "f1_macro", "auroc", "brier"), "image": ("accuracy", "f1_macro", "auroc", "brier"),
            "ner": ("precision", "recall", "f1", "token_accuracy"), "mlm": ("perplexity", "loss")}
LOWER_IS_BETTER = ("brier", "loss", "eval_loss", "perplexity")


class UploadError(ValueError):
    """A dataset upload refused before it was saved; the message is for the user as-is."""


def build_spec(task: str, preset: str = "quick check", **fields_: Any) -> dict[str, Any]:
    """A JobSpec dict: the preset's steps, then every non-None field given (advanced settings, data, base...)."""
    spec: dict[str, Any] = {"task": task, **PRESETS[preset]}
    spec.update({k: v for k, v in fields_.items() if v is not None})
    if spec.get("base") in ("", None):
        spec["base"] = "default"
    return spec


def save_upload(data: bytes, original_name: str, task: str) -> Path:
    """Check an uploaded dataset (upload guard, or a size and magic check for .npz) and keep it under
    $MEDUI_HOME/uploads/<sha256>/<safe name>; returns the saved path. UploadError for a refused file."""
    from medui.uploads import UploadRejected, check_upload, inspect_zip

    suffix = Path(original_name or "").suffix.lower()
    allowed = DATASET_SUFFIXES.get(task, ())
    if suffix not in allowed:
        raise UploadError(f"{task} datasets are {' or '.join(allowed)} files, not {suffix or 'a file without one'}")
    if not data:
        raise UploadError("The file is empty.")
    if suffix == ".npz":
        if len(data) > NPZ_MAX_BYTES:
            raise UploadError(f"The file is {len(data) / 2 ** 20:.0f} MB, over the "
                              f"{NPZ_MAX_BYTES // 2 ** 20} MB limit for an .npz dataset.")
        if not data.startswith(b"PK"):
            raise UploadError("This is not an .npz file (NumPy's zip of arrays).")
    else:
        try:
            check_upload(data, original_name, _UPLOAD_KIND[suffix])
            if suffix == ".zip":  # bombs, escaping paths and nested archives are refused before anything reads it
                inspect_zip(data, max_entries=DATASET_ZIP_ENTRIES, max_total_bytes=DATASET_ZIP_BYTES)
        except UploadRejected as exc:
            raise UploadError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(original_name).stem).strip("_")[:60] or "dataset"
    folder = _config.settings().home / "uploads" / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{suffix}"
    if not path.is_file():
        tmp = folder / f".{stem}{suffix}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


@dataclass
class Preview:
    """The dataset check shown before launch: the validation report, or the error that refuses it."""

    report: dict[str, Any] | None = None
    error: str | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None


def preview(spec: dict[str, Any]) -> Preview:
    """Validate the spec and its dataset exactly as jobs.submit will (nothing is queued). When bad rows refuse the
    dataset, the rejected rows are still listed (read again with skip_bad_rows) so the user sees every reason."""
    from medui.training import DatasetError, SpecError
    from medui.training.job import validate_dataset
    from medui.training.spec import JobSpec

    try:
        job_spec = JobSpec.from_dict(dict(spec))
    except SpecError as exc:
        return Preview(error=str(exc))
    try:
        report = validate_dataset(job_spec)
    except (DatasetError, SpecError) as exc:
        rejected: list[dict[str, Any]] = []
        if not job_spec.skip_bad_rows:
            try:
                rejected = validate_dataset(replace(job_spec, skip_bad_rows=True))["rejected"]
            except (DatasetError, SpecError, ValueError):
                pass
        return Preview(error=str(exc), rejected=rejected)
    except (OSError, ValueError) as exc:  # anything else a reader lets through is still the dataset's fault
        return Preview(error=f"cannot read the dataset: {exc}")
    return Preview(report=report, rejected=report.get("rejected", []))


def label_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per label: its count, and its count in each split."""
    splits = report.get("splits", {})
    return [{"label": label, "count": count, **{name: splits.get(name, {}).get(label, 0) for name in splits}}
            for label, count in report.get("counts", {}).items()]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows (train, eval, summary and test events); a half-written or garbled line is skipped."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Series name -> [(step, value)]: training loss and lr, and every scalar validation metric (eval_*)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        event, step = row.get("event"), row.get("step")
        if not isinstance(step, int):
            continue
        if event == "train":
            keys = [k for k in ("loss", "lr") if k in row]
            names = {k: "train_loss" if k == "loss" else k for k in keys}
        elif event == "eval":
            keys = [k for k in row if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))]
            names = {k: k for k in keys}
        else:
            continue
        for key in keys:
            value = row[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(names[key], []).append((step, float(value)))
    return out


def job_metrics_path(job_id: str) -> Path:
    from medui.training.job import job_dir

    return job_dir(job_id) / "metrics.jsonl"


def log_tail(job: dict[str, Any], lines: int = 40) -> str:
    from medui.training.runner import log_tail as tail

    return tail(job["log_path"], lines) if job.get("log_path") else ""


def job_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The job list as table rows."""
    out = []
    for row in rows:
        result = row.get("result") or {}
        spec = row.get("spec") or {}
        out.append({"Job": row["job_id"], "Status": row["status"], "Task": row["task"], "Method": row["method"],
                    "Model": result.get("model") or spec.get("name") or "", "Version": result.get("version") or "",
                    "By": row["created_by"], "Created (UTC)": row["created_at"], "Finished (UTC)": row["finished_at"]})
    return out


def candidate(job: dict[str, Any]) -> Any | None:
    """The registered version a succeeded job produced (a ModelVersion), or None."""
    from medui.registry import RegistryError, get_version

    result = job.get("result") or {}
    if job.get("status") != "succeeded" or not result.get("model") or not result.get("version"):
        return None
    try:
        return get_version(result["model"], result["version"])
    except RegistryError:
        return None


def production_of(name: str) -> Any | None:
    """The production version of `name`, or None when there is none."""
    from medui.registry import RegistryError, get_version

    try:
        return get_version(name)
    except RegistryError:
        return None


def comparison(task: str, candidate_metrics: dict[str, Any], production_metrics: dict[str, Any]) -> list[dict]:
    """Side by side: one row per headline metric either side has (plus any other shared scalar), with the
    difference candidate - production and whether it is better."""
    names = [m for m in HEADLINE.get(task, ()) if m in candidate_metrics or m in production_metrics]
    names += sorted(k for k in candidate_metrics.keys() & production_metrics.keys() if k not in names
                    and _num(candidate_metrics[k]) is not None and _num(production_metrics[k]) is not None)
    rows = []
    for name in names:
        cand, prod = _num(candidate_metrics.get(name)), _num(production_metrics.get(name))
        diff = None if cand is None or prod is None else cand - prod
        better = None if diff is None or diff == 0 else (diff < 0) == (name in LOWER_IS_BETTER)
        rows.append({"metric": name, "candidate": cand, "production": prod, "difference": diff,
                     "better": {True: "candidate", False: "production", None: ""}[better]})
    return rows


def param_counts(job: dict[str, Any], version: Any | None) -> tuple[int | None, int | None]:
    """(trainable, total) parameters, from the job's result or the version's training metrics."""
    result = job.get("result") or {}
    training = (getattr(version, "metrics", None) or {}).get("training", {}) if version is not None else {}
    return (result.get("trainable_params") or training.get("trainable_params"),
            result.get("total_params") or training.get("total_params"))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
