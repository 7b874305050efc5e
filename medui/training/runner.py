"""Starts queued training jobs in their own processes and keeps their rows true to what those processes did.

    start_next(command=None) -> [job_id]   start queued jobs while a slot is free
    reconcile() -> {job_id: status}        finish rows whose process ended (also after an app restart)
    tick()                                  reconcile, then start_next: call it on every page rerun or CLI listing
    max_slots()                             MEDUI_MAX_JOBS, else one per visible GPU, else 1
    wait(job_id, timeout_s)                 tick until the job has finished (tests, scripts)

Each job runs `python -m medui.training.run SPEC.json --job-id ID --actor WHO` with start_new_session=True (its
own process group, so a cancel reaches its data-loader workers too), stdout and stderr appended to its log.txt.
Nothing here runs training in the calling thread.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medui import config as _config
from medui.training import jobs

RUN_MODULE = "medui.training.run"
LOG_TAIL_LINES = 20
CLAIM_TIMEOUT_S = 120  # a row claimed "running" that never got a pid for this long: its starter died

# (spec path, job id, actor) -> argv. Tests inject a stand-in; it must keep RUN_MODULE and the job id in its
# argv (e.g. as extra `python -c` arguments) so `reconcile` recognises the process as the job's own.
Command = Callable[[Path, str, str], list[str]]

# The processes this Python process started, so it can reap them (no zombies) and read their exit codes.
_children: dict[str, subprocess.Popen] = {}


def job_command(spec_path: Path, job_id: str, actor: str) -> list[str]:
    return [sys.executable, "-m", RUN_MODULE, str(spec_path), "--job-id", job_id, "--actor", actor]


COMMAND: Command = job_command


def hostname() -> str:
    return socket.gethostname()


def _gpu_count() -> int:
    if os.environ.get("MEDUI_DEVICE", "").strip().lower() in ("cpu", "mps"):
        return 0
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except (ImportError, RuntimeError):  # no torch or a broken driver: train on CPU
        return 0


def max_slots() -> int:
    """How many jobs may run at once on this host: MEDUI_MAX_JOBS if set, else one per GPU, else 1 (CPU)."""
    raw = os.environ.get("MEDUI_MAX_JOBS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"MEDUI_MAX_JOBS must be a whole number, got {raw!r}") from None
        if value <= 0:
            raise ValueError(f"MEDUI_MAX_JOBS must be positive, got {value}")
        return value
    return max(1, _gpu_count())


def _child_env(gpu: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_config.REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)  # one job per GPU: the child sees only its own
    return env


def start_next(command: Command | None = None) -> list[str]:
    """Start queued jobs, oldest first, while fewer than `max_slots()` run on this host; returns their ids."""
    command = command or COMMAND
    started: list[str] = []
    slots = max_slots()
    gpus = _gpu_count()
    while True:
        running = [r for r in jobs.running_jobs() if r["host"] in (None, hostname())]
        if len(running) >= slots:
            return started
        free = [g for g in range(gpus) if g not in {r["gpu"] for r in running}] if gpus else None
        row = jobs.claim_next(free)
        if row is None:
            return started
        _launch(row, command)
        started.append(row["job_id"])


def _launch(row: dict[str, Any], command: Command) -> None:
    from medui import audit

    job_id, actor = row["job_id"], row["created_by"]
    log_path = Path(row["log_path"])
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            child = subprocess.Popen(command(jobs.spec_path(job_id), job_id, actor), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=_child_env(row["gpu"]), cwd=str(_config.REPO_ROOT))
    except OSError as exc:
        message = f"could not start the job's process: {exc.strerror or exc}"
        jobs.mark_finished(job_id, "failed", error=message)
        audit.record(actor, "training_launch", "failure", job_id=job_id, error=message)
        return
    _children[job_id] = child
    jobs.mark_started(job_id, child.pid, child.pid)  # start_new_session: the child leads its own group
    audit.record(actor, "training_launch", job_id=job_id, task=row["task"], method=row["method"], pid=child.pid,
                 host=row["host"], gpu=row["gpu"])
    if jobs.get_job(job_id)["status"] != "running":  # cancelled while we were starting it
        kill_group(job_id, child.pid, grace_s=5.0)


def _reap(job_id: str) -> int | None:
    """The exit code of a child we started, once it has ended (None while it runs or if it is not ours)."""
    child = _children.get(job_id)
    return child.poll() if child is not None else None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(job_id: str, pgid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the job's process group, then SIGKILL whatever is left after `grace_s`; waits until it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            _reap(job_id)  # our own child lingers as a zombie (and keeps the group alive) until reaped
            if not _group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    if _reap(job_id) is not None:
        _children.pop(job_id, None)


def _is_our_job(pid: int, job_id: str) -> bool:
    """The pid is alive and still runs this job's run module (not a recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): trust the pid
    try:
        argv = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    # A zombie has an empty cmdline: it has ended.
    return RUN_MODULE.encode() in argv and job_id.encode() in argv


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _last_error_line(tail: str) -> str | None:
    errors = [line[len("error: "):].strip() for line in tail.splitlines() if line.startswith("error: ")]
    return errors[-1] if errors else None


def _age_s(moment: str | None) -> float:
    if not moment:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(moment)).total_seconds()


def _ended(exit_code: int | None) -> str:
    """How the process ended, as far as this process can tell (a negative code is the signal that killed it)."""
    if exit_code is None:  # not our child (started before an app restart): only its absence is known
        return "the job's process ended without a result"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"the job's process was killed by {name} before it finished"
    return f"the job's process exited with code {exit_code}"


def _finish(row: dict[str, Any], exit_code: int | None) -> str:
    """Mark a job whose process has ended: succeeded if its result.json says completed, else failed."""
    from medui.training.job import read_status

    job_id = row["job_id"]
    try:
        status = read_status(job_id)
    except (OSError, ValueError):
        status = {}
    if status.get("status") == "completed":
        jobs.mark_finished(job_id, "succeeded", result=jobs.result_summary(status))
        return "succeeded"
    tail = log_tail(row["log_path"])
    error = status.get("error") or _last_error_line(tail)
    if not error:
        error = _ended(exit_code)
    jobs.mark_finished(job_id, "failed", error=jobs.failure_message(error, tail))
    return "failed"


def reconcile() -> dict[str, str]:
    """Bring running rows of this host in line with their processes; returns {job_id: new status} of changes.

    A row whose process is alive (and still our run module) stays running; one whose process is gone becomes
    succeeded (result.json says completed) or failed (with the log's tail). Rows of other hosts are left alone."""
    changed: dict[str, str] = {}
    for row in jobs.running_jobs():
        if row["host"] not in (None, hostname()):
            continue
        job_id = row["job_id"]
        if row["pid"] is None:
            if job_id not in _children and _age_s(row["started_at"]) > CLAIM_TIMEOUT_S:
                jobs.mark_finished(job_id, "failed", error="the job was claimed but its process never started")
                changed[job_id] = "failed"
            continue
        exit_code = _reap(job_id)
        if job_id in _children and exit_code is None:
            continue  # our child, still running
        if exit_code is None and _is_our_job(row["pid"], job_id):
            continue
        changed[job_id] = _finish(row, exit_code)
        _children.pop(job_id, None)
    return changed


def tick(command: Command | None = None) -> dict[str, str]:
    changed = reconcile()
    start_next(command)
    return changed


def wait(job_id: str, timeout_s: float = 600.0, poll_s: float = 0.25, command: Command | None = None) -> dict:
    """Tick until `job_id` has finished; returns its row. TimeoutError if it has not after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        tick(command)
        row = jobs.get_job(job_id)
        if row["status"] in jobs.FINISHED:
            return row
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {row['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)
