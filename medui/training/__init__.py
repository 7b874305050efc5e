"""Fine-tuning jobs: ECG rhythm and clinical NER, full / LoRA / AdaLoRA / IA3 / head-only, into the registry.

Public API (imported lazily: torch and transformers load only when a job or a model is needed):
    JobSpec, SpecError, DatasetError            the job description and its two user-facing errors
    run_job(spec, job_id=None, actor=...)       train, test and register a candidate; resumes an unfinished job_id
    read_status(job_id)                          the job's result.json (running / failed / interrupted / completed)
    validate_dataset(spec)                       counts per label and split, rejected rows; DatasetError if unusable
    load_for_inference(version, merge=False)     (model, labels) of a registered trained version
    load_tokenizer(version)                      the tokenizer stored with a ner version
    TASK_KINDS                                   the task plug-ins, by name
Run one job in its own process with `python -m medui.training.run SPEC.json`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from medui.training.errors import DatasetError, SpecError

_LAZY = {
    "JobSpec": "medui.training.spec", "METHODS": "medui.training.spec", "run_job": "medui.training.job",
    "new_job_id": "medui.training.job", "read_status": "medui.training.job", "job_dir": "medui.training.job",
    "validate_dataset": "medui.training.job",
    "load_for_inference": "medui.training.serving", "load_tokenizer": "medui.training.serving",
    "TASK_KINDS": "medui.training.tasks",
}
__all__ = [
    "METHODS",
    "TASK_KINDS",
    "DatasetError",
    "JobSpec",
    "SpecError",
    "job_dir",
    "load_for_inference",
    "load_tokenizer",
    "new_job_id",
    "read_status",
    "run_job",
    "validate_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medui.training' has no attribute {name!r}")
