"""The job runner under torchrun: two CPU processes (gloo) train one tiny ECG job; rank 0 alone registers it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

import medui
from medui.registry import list_versions
from medui.training.job import read_status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_train_one_job_and_register_once(tmp_path, medui_home):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"task": "ecg", "method": "lora", "max_steps": 2, "batch_size": 4, "eval_steps": 2,
                                "logging_steps": 1}), encoding="utf-8")
    before = {mv.version for mv in list_versions("ecg-rhythm")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(medui.__file__)))  # medui importable from any cwd
    env = {**os.environ, "MEDUI_HOME": str(medui_home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):  # a fresh torchrun, not ours
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "medui.training.run", str(spec), "--job-id", "ddp-job"]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("job ddp-job completed") == 1  # printed by rank 0 only

    status = read_status("ddp-job")
    assert status["status"] == "completed" and status["model"] == "ecg-rhythm"
    assert status["stats"]["world_size"] == 2 and status["stats"]["global_step"] == 2

    folder = medui_home / "jobs" / "ddp-job"
    assert "rank 0 of 2" in (folder / "log.txt").read_text(encoding="utf-8")
    assert "rank 1 of 2" in (folder / "log-rank1.txt").read_text(encoding="utf-8")  # the second rank trained too
    state = json.loads((folder / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 2
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in rows if r["event"] == "train"] == [1, 2]  # one writer, not one per rank
    assert [r["event"] for r in rows].count("test") == 1

    after = {mv.version: mv for mv in list_versions("ecg-rhythm")}
    new = set(after) - before
    assert new == {status["version"]}  # exactly one candidate, from rank 0
    assert after[status["version"]].provenance["job_id"] == "ddp-job"


def test_torchrun_needs_a_job_id(monkeypatch):
    from medui.training import JobSpec, SpecError, run_job

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SpecError, match="under torchrun pass --job-id"):
        run_job(JobSpec(task="ecg", max_steps=1))
