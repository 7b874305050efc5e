"""Candidate vs production on the candidate job's own test split: both models run on the same examples.

    why_not_compared(job_id) -> str | None     why there is nothing to compare (no production version, or it is
                                               the candidate); None when a comparison can run
    compare_with_production(job_id) -> dict | None   both test reports, the split and its size; None (see
                                               why_not_compared) when there is nothing to compare
    cached_comparison(job_id) -> dict | None   the stored result for the current production version, if computed

Each registered version's metrics were measured on its own job's test split, so putting them side by side compares
different examples. Here the job's dataset is re-read, exactly the indices in its test_predictions.json are taken,
and both versions are run on them (CPU, batched, inference mode) and scored by the task's own `test_report`. When the
label sets differ, single- and multi-label classifiers are scored on the shared labels only (examples of other
classes are left out, and softmax is taken over the shared classes); NER needs identical label sets, and MLM (whose
score depends on random masking) is not re-run.
The result is cached in the job folder (compare.json, keyed by production name/version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medui.registry import ModelVersion, RegistryError, get_version

CACHE_FILE = "compare.json"


class CompareError(ValueError):
    """A job that cannot be compared at all (unknown, unfinished, its files gone); one line for the user."""


def _candidate(job_id: str) -> tuple[ModelVersion, Path]:
    from medui.training.job import job_dir, read_status

    status = read_status(job_id)
    if status.get("status") != "completed" or not status.get("model"):
        raise CompareError(f"job {job_id} has no registered model to compare (status: "
                           f"{status.get('status') or 'not started'})")
    try:
        return get_version(status["model"], status["version"]), job_dir(job_id)
    except RegistryError:
        raise CompareError(f"{status['model']} version {status['version']} of job {job_id} is no longer in the "
                           "registry") from None


def _production(name: str) -> ModelVersion | None:
    try:
        return get_version(name)
    except RegistryError:
        return None


def why_not_compared(job_id: str) -> str | None:
    """Why the job's candidate has no production version to be compared with; None when it has one."""
    candidate, _ = _candidate(job_id)
    production = _production(candidate.name)
    if production is None:
        return f"{candidate.name} has no production version yet"
    if production.version == candidate.version:
        return f"{candidate.name} v{candidate.version} is itself the production version"
    return None


def _key(production: ModelVersion) -> str:
    return f"{production.name}/{production.version}"


def _read_cache(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def cached_comparison(job_id: str) -> dict[str, Any] | None:
    """The comparison already computed against the current production version, or None."""
    try:
        candidate, folder = _candidate(job_id)
    except CompareError:
        return None
    production = _production(candidate.name)
    return None if production is None else _read_cache(folder).get(_key(production))


def compare_with_production(job_id: str) -> dict[str, Any] | None:
    """Run the production version of the job's model name on the job's test split and score both versions.

    None when there is no production version or it is the candidate (`why_not_compared` says which). A dict with
    "comparable": False and a "reason" when the two cannot be scored on the same labels. CompareError for a job
    that is unknown or unfinished, or whose dataset has changed since it ran.
    """
    if why_not_compared(job_id):
        return None
    candidate, folder = _candidate(job_id)
    production = _production(candidate.name)
    cache = _read_cache(folder)
    if _key(production) not in cache:
        cache[_key(production)] = _compare(candidate, production, folder)
        (folder / CACHE_FILE).write_text(json.dumps(cache, indent=2, default=float) + "\n", encoding="utf-8")
    return cache[_key(production)]


def _compare(candidate: ModelVersion, production: ModelVersion, folder: Path) -> dict[str, Any]:
    from medui.training.data import dataset_sha256
    from medui.training.spec import JobSpec
    from medui.training.tasks import get_task

    spec = JobSpec.from_dict(json.loads((folder / "spec.json").read_text(encoding="utf-8")))
    indices = json.loads((folder / "test_predictions.json").read_text(encoding="utf-8"))["indices"]
    data = Path(spec.data)
    if not data.exists() or dataset_sha256(data) != candidate.provenance.get("data_sha256"):
        raise CompareError(f"the dataset {data} has changed or gone since the job ran: its test split is unknown")
    task = get_task(spec.task)
    examples = task.read(data, spec)
    out = {"comparable": False, "task": spec.task, "model": candidate.name, "candidate_version": candidate.version,
           "production_version": production.version, "split": "test", "split_size": len(indices),
           "data": str(data), "data_sha256": candidate.provenance.get("data_sha256")}
    shared = [label for label in examples.labels if label in production.labels]
    if production.task != candidate.task:
        return {**out, "reason": f"production v{production.version} is a {production.task} model"}
    if spec.task == "mlm":  # its test loss depends on which tokens the collator masks at random
        return {**out, "reason": "masked-language models are compared by their registered test perplexity only"}
    if shared != examples.labels or len(production.labels) != len(shared):
        if spec.task not in ("ecg", "image"):
            return {**out, "reason": f"label sets differ (candidate {examples.labels}, production "
                                     f"{production.labels}); {spec.task} models are compared on identical labels only"}
        if len(shared) < 2:
            return {**out, "reason": f"fewer than two shared labels (candidate {examples.labels}, production "
                                     f"{production.labels})"}
    multilabel = bool(examples.info.get("multilabel"))
    reports = {}
    for role, mv in (("candidate", candidate), ("production", production)):
        try:
            logits, label_ids = _predict(task, mv, examples, indices, spec)
        except (RuntimeError, ValueError) as exc:  # e.g. production reads another number of ECG leads
            return {**out, "reason": f"{role} v{mv.version} cannot read this dataset ({str(exc).splitlines()[0]})"}
        logits, label_ids = _on_shared(logits, label_ids, examples.labels, mv.labels, shared, multilabel)
        reports[role] = task.test_report(logits, label_ids, shared)
    return {**out, "comparable": True, "n": int(reports["candidate"].get("n", len(indices))), "labels": shared,
            "left_out_labels": sorted(set(examples.labels) ^ set(production.labels)), **reports}


def _predict(task: Any, mv: ModelVersion, examples: Any, indices: list[int], spec: Any) -> tuple[Any, Any]:
    """(logits, label ids in the dataset's label order) of one version on the given examples."""
    import torch
    from torch.utils.data import DataLoader
    from transformers.trainer_pt_utils import nested_concat  # pads NER batches of different lengths, like Trainer

    from medui.training.serving import load_for_inference, load_tokenizer
    from medui.training.tasks import Built

    model, _ = load_for_inference(mv, device="cpu")
    multilabel = bool(getattr(model, "hparams", {}).get("multilabel"))
    if mv.task == "image" and multilabel != bool(examples.info.get("multilabel")):
        kinds = ("single-label", "multi-label")
        raise ValueError(f"it is a {kinds[multilabel]} model and the dataset is {kinds[not multilabel]}")
    built = Built(model=model, processor=load_tokenizer(mv) if mv.task in ("ner", "mlm") else None)
    dataset, _ = task.encode(built, examples, indices, spec)
    logits = label_ids = None
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=spec.batch_size, collate_fn=task.collator(built)):
            labels = batch.pop("labels")
            out = model(**batch).logits
            logits = out if logits is None else nested_concat(logits, out, padding_index=-100)
            label_ids = labels if label_ids is None else nested_concat(label_ids, labels, padding_index=-100)
    return logits.float().numpy(), label_ids.numpy()


def _on_shared(logits: np.ndarray, label_ids: np.ndarray, data_labels: list[str], model_labels: list[str],
               shared: list[str], multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Logits columns and targets of the shared labels only; single-label: only examples of a shared class."""
    if shared == data_labels and shared == model_labels:
        return logits, label_ids
    columns = [model_labels.index(label) for label in shared]
    if multilabel:
        return logits[:, columns], label_ids[:, [data_labels.index(label) for label in shared]]
    remap = {data_labels.index(label): i for i, label in enumerate(shared)}
    keep = np.array([y in remap for y in label_ids], dtype=bool)
    return logits[keep][:, columns], np.array([remap[y] for y in label_ids[keep]], dtype=np.int64)
