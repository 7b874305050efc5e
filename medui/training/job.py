"""One training job end to end: validate, split, build, train (resumable), test, save, register a candidate."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

from medui import config as _config
from medui.training.errors import SpecError
from medui.training.spec import JobSpec

log = logging.getLogger("medui.training")

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
# What a resumed job may not change: anything that would make its checkpoints describe another model.
_FIXED_ON_RESUME = ("task", "method", "data", "base", "name", "seed", "val_fraction", "test_fraction", "max_length",
                    "lora_r", "lora_alpha", "adapter_size", "train_top_layers", "fs", "image_size")


def dist_rank() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless started by torchrun (which sets RANK and WORLD_SIZE)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def new_job_id(spec: JobSpec) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{spec.task}-{spec.method}-{secrets.token_hex(3)}"


def job_dir(job_id: str) -> Path:
    if not _JOB_ID_RE.match(job_id or ""):
        raise SpecError(f"invalid job id {job_id!r}: letters, digits, '.', '_' or '-'")
    return _config.settings().jobs_dir / job_id


def read_status(job_id: str) -> dict[str, Any]:
    path = job_dir(job_id) / "result.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def validate_dataset(spec: JobSpec) -> dict[str, Any]:
    """Read, check and split the spec's dataset without building a model: the report dataset.json will hold
    (counts per label and split, rejected rows). Raises DatasetError for data that cannot be trained on."""
    from medui.training.data import report, split
    from medui.training.tasks import get_task

    examples = get_task(spec.task).read(Path(spec.data), spec)
    splits = split(examples.keys, spec.seed, spec.val_fraction, spec.test_fraction)
    return report(examples, Path(spec.data), splits)


def _write_status(folder: Path, data: dict[str, Any]) -> None:
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(folder / "result.json")  # readers (the CLI, a UI polling) never see half a file


def _prepare(spec: JobSpec, folder: Path) -> None:
    """A new job, or an existing one to resume if its spec agrees on everything that shapes the model."""
    if (folder / "spec.json").is_file():
        status = read_status(folder.name)
        if status.get("status") == "completed":
            raise SpecError(f"job {folder.name} already completed ({status.get('model')} version "
                            f"{status.get('version')})")
        previous = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
        changed = [key for key in _FIXED_ON_RESUME if previous.get(key) != getattr(spec, key)]
        if changed:
            raise SpecError(f"job {folder.name} was started with a different {changed[0]}; start a new job instead")
    (folder / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """One process per job folder: two trainers resuming the same job would overwrite each other's checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        if fcntl is not None:  # advisory and released by the OS when the process dies, so a killed job can resume
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SpecError(f"job {folder.name} is already running") from None
        yield


def _is_stderr(path: Path) -> bool:
    """Whether this process's stderr is already the file at `path` (a job started by the runner)."""
    try:
        return os.path.samestat(os.fstat(sys.stderr.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):  # no such file yet, or stderr is not a real file
        return False


@contextmanager
def _job_log(folder: Path, rank: int = 0) -> Iterator[None]:
    """Our progress lines plus transformers' and peft's warnings, in the job's log.txt (log-rank<N>.txt for the
    other ranks of a torchrun job)."""
    path = folder / ("log.txt" if rank == 0 else f"log-rank{rank}.txt")
    log.setLevel(logging.INFO)
    if _is_stderr(path):  # the runner already sends this process's stderr (where records go too) into the file
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [log, logging.getLogger("transformers"), logging.getLogger("peft")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


def run_job(spec: JobSpec, job_id: str | None = None, actor: str = "training", callbacks: list | None = None) -> dict:
    """Run (or resume, when `job_id` names an unfinished job) one job; returns the result dict.

    Raises SpecError/DatasetError (ValueErrors) for bad input; result.json in the job folder always says
    how the job ended: completed, failed (with the error) or interrupted.

    Under torchrun every rank calls this with the same job id; rank 0 alone holds the job lock and writes
    spec.json and result.json, the other ranks train alongside it (see loop.train_and_register).
    """
    rank, world = dist_rank()
    if world > 1:
        if not job_id:
            raise SpecError("under torchrun pass --job-id, so that every rank works in the same job folder")
        if rank != 0:
            folder = job_dir(job_id)
            folder.mkdir(parents=True, exist_ok=True)
            with _job_log(folder, rank):
                from medui.training.loop import train_and_register

                return train_and_register(spec, job_id, folder, actor, callbacks or [])
    job_id = job_id or new_job_id(spec)
    folder = job_dir(job_id)
    with _exclusive(folder):
        _prepare(spec, folder)
        with _job_log(folder):
            _write_status(folder, {"job_id": job_id, "status": "running"})
            try:
                from medui.training.loop import train_and_register

                result = train_and_register(spec, job_id, folder, actor, callbacks or [])
            except KeyboardInterrupt:
                log.warning("job %s interrupted; run it again with the same job id to resume from its last "
                            "checkpoint", job_id)
                _write_status(folder, {"job_id": job_id, "status": "interrupted"})
                raise
            except Exception as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error("job %s failed: %s", job_id, message)
                _write_status(folder, {"job_id": job_id, "status": "failed", "error": message})
                raise
        _write_status(folder, result)
    return result
