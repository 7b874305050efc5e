"""The training-job queue: one database row per job (queued, running, succeeded, failed, cancelled).

    submit(spec, actor) -> job_id     validate the spec and its dataset, then queue it (bad input never queues)
    list_jobs(status=None)            rows as dicts, newest first
    get_job(job_id)                   one row as a dict (JobError if there is none)
    cancel(job_id, actor)             a queued job is dropped, a running one has its process group killed
    claim / mark_started / mark_finished   state changes used by `medui.training.runner`

Starting, supervising and re-attaching to job processes is `medui.training.runner`'s work.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from medui.auth import require_role
from medui.store import session_scope
from medui.store.models import TrainingJob

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
SPEC_FILE = "submitted_spec.json"  # not spec.json: run_job writes that one and reads it as "resume this job"
OOM_MESSAGE = "GPU out of memory: reduce the batch size"
_OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory")


class JobError(ValueError):
    """A one-line, user-facing problem with a job (no such job, cannot be cancelled, ...)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive UTC back
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def to_dict(row: TrainingJob) -> dict[str, Any]:
    return {"job_id": row.job_id, "status": row.status, "task": row.task, "method": row.method,
            "created_by": row.created_by, "created_at": _iso(row.created_at), "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at), "pid": row.pid, "pgid": row.pgid, "host": row.host,
            "gpu": row.gpu, "result": row.result, "error": row.error, "log_path": row.log_path, "spec": row.spec}


def spec_path(job_id: str) -> Path:
    from medui.training.job import job_dir

    return job_dir(job_id) / SPEC_FILE


def submit(spec: Any, actor: str, job_id: str | None = None) -> str:
    """Queue one job; returns its id. `spec` is a JobSpec or its dict. Raises SpecError / DatasetError (both
    ValueErrors) for a bad spec or dataset, JobError for a taken job id; nothing is queued then."""
    from medui.training.job import job_dir, new_job_id, validate_dataset
    from medui.training.spec import JobSpec

    require_role(actor, "admin", "training_submit")
    spec = spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)
    validate_dataset(spec)
    job_id = job_id or new_job_id(spec)
    folder = job_dir(job_id)
    with session_scope() as session:
        if session.get(TrainingJob, job_id) is not None or folder.exists():
            raise JobError(f"job {job_id} already exists")
        folder.mkdir(parents=True)
        (folder / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
        session.add(TrainingJob(job_id=job_id, status="queued", task=spec.task, method=spec.method,
                                spec=spec.to_dict(), created_by=actor, created_at=_now(),
                                log_path=str(folder / "log.txt")))
    return job_id


def list_jobs(status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    if status is not None and status not in STATES:
        raise JobError(f"unknown status {status!r}: use one of {', '.join(STATES)}")
    query = select(TrainingJob).order_by(TrainingJob.created_at.desc(), TrainingJob.job_id.desc()).limit(limit)
    if status:
        query = query.where(TrainingJob.status == status)
    with session_scope() as session:
        return [to_dict(row) for row in session.scalars(query)]


def get_job(job_id: str) -> dict[str, Any]:
    with session_scope() as session:
        row = session.get(TrainingJob, job_id)
        if row is None:
            raise JobError(f"no job {job_id}")
        return to_dict(row)


def claim_next(free_gpus: list[int] | None) -> dict[str, Any] | None:
    """Mark the oldest queued job running (pid not known yet) and return it, or None when the queue is empty.

    One transaction: SQLite's BEGIN IMMEDIATE (or PostgreSQL's row lock) keeps two runners off the same row."""
    import socket

    query = (select(TrainingJob).where(TrainingJob.status == "queued")
             .order_by(TrainingJob.created_at, TrainingJob.job_id).limit(1).with_for_update(skip_locked=True))
    with session_scope() as session:
        row = session.scalars(query).first()
        if row is None:
            return None
        row.status, row.started_at, row.host = "running", _now(), socket.gethostname()
        row.gpu = free_gpus[0] if free_gpus else None
        return to_dict(row)


def running_jobs() -> list[dict[str, Any]]:
    return list_jobs("running", limit=10_000)


def mark_started(job_id: str, pid: int, pgid: int) -> None:
    with session_scope() as session:
        row = session.get(TrainingJob, job_id)
        row.pid, row.pgid = pid, pgid


def mark_finished(job_id: str, status: str, result: dict | None = None, error: str | None = None,
                  only_if: tuple[str, ...] = ("running",)) -> bool:
    """Move a job to a finished state; False (and no change) when it is no longer in one of `only_if`."""
    if status not in FINISHED:
        raise ValueError(f"not a finished state: {status!r}")
    with session_scope() as session:
        row = session.get(TrainingJob, job_id)
        if row is None or row.status not in only_if:
            return False
        row.status, row.finished_at, row.result, row.error = status, _now(), result, error
        return True


def failure_message(error: str | None, log_tail: str) -> str:
    """The headline for a failed job (a CUDA OOM anywhere in it or the log becomes a clear instruction), then
    the log's last lines."""
    text = f"{error or ''}\n{log_tail}"
    headline = OOM_MESSAGE if any(m in text for m in _OOM_MARKERS) else (
        error or "the job's process ended without a result")
    return f"{headline}\n{log_tail}".rstrip() if log_tail else headline


def result_summary(status: dict[str, Any]) -> dict[str, Any]:
    """What the row keeps of a completed result.json: the registered model and the headline metrics."""
    metrics = status.get("metrics") or {}
    return {"model": status.get("model"), "version": status.get("version"),
            "metrics": {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
            "trainable_params": status.get("trainable_params"), "total_params": status.get("total_params")}


def cancel(job_id: str, actor: str, grace_s: float = 10.0) -> dict[str, Any]:
    """Cancel a queued or running job (a running one: SIGTERM to its process group, SIGKILL after `grace_s`).
    Audit-logged as training_cancel. Returns the updated row."""
    from medui import audit
    from medui.training import runner

    require_role(actor, "admin", "training_cancel")
    row = get_job(job_id)
    if row["status"] in FINISHED:
        raise JobError(f"job {job_id} already {row['status']}")
    if row["status"] == "running" and row["pgid"] is not None:
        if row["host"] and row["host"] != runner.hostname():
            raise JobError(f"job {job_id} runs on host {row['host']}; cancel it there")
        runner.kill_group(job_id, row["pgid"], grace_s)
    if not mark_finished(job_id, "cancelled", error=f"cancelled by {actor}", only_if=("queued", "running")):
        row = get_job(job_id)
        raise JobError(f"job {job_id} already {row['status']}")
    audit.record(actor, "training_cancel", job_id=job_id, was=row["status"], task=row["task"], method=row["method"])
    return get_job(job_id)
