"""The training-job queue: rows, the runner's child processes, reconcile after a restart, cancel, and the CLI."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from medui.training import DatasetError, SpecError, jobs, runner
from medui.training.job import job_dir

TINY_ECG = {"task": "ecg", "method": "lora", "max_steps": 2, "batch_size": 4, "eval_steps": 2, "logging_steps": 1}


def fake(code: str):
    """A stand-in job command: `python -c CODE`, with the run module's name and the job id in its argv so
    reconcile recognises it as the job's own process."""
    def command(spec_path, job_id, actor):
        return [sys.executable, "-c", code, runner.RUN_MODULE, "--job-id", job_id, str(spec_path)]
    return command


SLEEP = fake("import time; time.sleep(60)")


@pytest.fixture(autouse=True)
def _one_slot(one_job_slot):
    """One slot unless a test says otherwise; no test leaves a job process behind."""


def wait_exit(job_id: str) -> None:
    runner._children[job_id].wait(timeout=20)


def alive(pid: int) -> bool:
    """Running (a zombie, reparented to an init that may not reap it, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_submit_refuses_a_bad_spec_or_dataset_without_queueing(tmp_path):
    with pytest.raises(SpecError, match="unknown method 'qlora'"):
        jobs.submit({"task": "ecg", "method": "qlora"}, "dr.a")
    (tmp_path / "e.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="needs a header with path and label columns"):
        jobs.submit({"task": "ecg", "data": str(tmp_path / "e.csv")}, "dr.a")
    job_id = jobs.submit(TINY_ECG, "dr.a", job_id="taken")
    with pytest.raises(jobs.JobError, match="job taken already exists"):
        jobs.submit(TINY_ECG, "dr.a", job_id="taken")
    assert [(r["job_id"], r["status"], r["created_by"]) for r in jobs.list_jobs()] == [(job_id, "queued", "dr.a")]


@pytest.mark.slow
def test_a_submitted_job_runs_in_a_child_process_to_succeeded(shipped_models):
    from medui import audit
    from medui.registry import get_version

    job_id = jobs.submit(TINY_ECG, "dr.a")
    assert runner.start_next() == [job_id]
    row = jobs.get_job(job_id)
    assert row["status"] == "running" and row["pid"] == row["pgid"] != os.getpid()
    row = runner.wait(job_id, timeout_s=240)
    assert row["status"] == "succeeded", row["error"]
    assert row["result"]["model"] == "ecg-rhythm" and "auroc" in row["result"]["metrics"]
    assert get_version("ecg-rhythm", row["result"]["version"]).provenance["job_id"] == job_id
    assert row["finished_at"] >= row["started_at"] >= row["created_at"]
    assert Path(row["log_path"]).read_text().count("registered ecg-rhythm version") == 1  # not once per handler
    launch = audit.events(action="training_launch")[0]
    assert launch["actor"] == "dr.a" and launch["detail"]["job_id"] == job_id


def test_cancel_kills_the_jobs_process_group(tmp_path):
    from medui import audit

    grandchild_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(grandchild_file)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(60)")
    job_id = jobs.submit(TINY_ECG, "dr.a")
    runner.start_next(fake(code))
    deadline = time.monotonic() + 20
    while not (grandchild_file.is_file() and grandchild_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(grandchild_file.read_text())
    pid = jobs.get_job(job_id)["pid"]
    assert alive(pid) and alive(grandchild)

    started = time.monotonic()
    row = jobs.cancel(job_id, "dr.b", grace_s=3)
    assert time.monotonic() - started < 5
    assert row["status"] == "cancelled" and row["finished_at"] and row["error"] == "cancelled by dr.b"
    assert not alive(pid) and not alive(grandchild)
    event = audit.events(action="training_cancel")[0]
    assert event["actor"] == "dr.b" and event["detail"] == {"job_id": job_id, "was": "running", "task": "ecg",
                                                          "method": "lora"}
    with pytest.raises(jobs.JobError, match=f"job {job_id} already cancelled"):
        jobs.cancel(job_id, "dr.b")


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period():
    job_id = jobs.submit(TINY_ECG, "dr.a")
    runner.start_next(fake("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', "
                           "flush=True)\ntime.sleep(60)"))
    deadline = time.monotonic() + 20
    while "ready" not in Path(jobs.get_job(job_id)["log_path"]).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert jobs.cancel(job_id, "dr.a", grace_s=0.5)["status"] == "cancelled"
    assert 0.4 < time.monotonic() - started < 5


def test_reconcile_marks_ended_jobs_from_their_result_or_log():
    crash = jobs.submit(TINY_ECG, "dr.a", job_id="crash")
    runner.start_next(fake("import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"))
    wait_exit(crash)
    assert runner.reconcile() == {crash: "failed"}
    error = jobs.get_job(crash)["error"]
    assert error.splitlines()[0] == "the job's process exited with code 3"
    assert error.splitlines()[-1] == "line 29" and "line 9\n" not in error  # only the tail

    oom = jobs.submit(TINY_ECG, "dr.a", job_id="oom")
    runner.start_next(fake("import sys\nprint('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB')"
                           "\nsys.exit(1)"))
    wait_exit(oom)
    runner.reconcile()
    assert jobs.get_job(oom)["error"].splitlines()[0] == jobs.OOM_MESSAGE

    done = jobs.submit(TINY_ECG, "dr.a", job_id="done")
    result = {"job_id": "done", "status": "completed", "model": "ecg-rhythm", "version": "7",
              "metrics": {"auroc": 0.912345, "confusion": [[1]]}, "trainable_params": 10, "total_params": 100}
    runner.start_next(fake(f"open({str(job_dir(done) / 'result.json')!r}, 'w').write({json.dumps(result)!r})"))
    wait_exit(done)
    # After an app restart the runner no longer holds the child: reconcile goes by pid and result.json alone.
    runner._children.pop(done).wait()
    assert runner.reconcile() == {done: "succeeded"}
    assert jobs.get_job(done)["result"] == {"model": "ecg-rhythm", "version": "7", "metrics": {"auroc": 0.9123},
                                            "trainable_params": 10, "total_params": 100}


def test_reconcile_keeps_a_live_job_running_and_fails_a_recycled_pid(monkeypatch):
    monkeypatch.setenv("MEDUI_MAX_JOBS", "2")
    live, recycled = jobs.submit(TINY_ECG, "dr.a"), jobs.submit(TINY_ECG, "dr.a")
    assert runner.start_next(SLEEP) == [live, recycled]
    held = dict(runner._children)
    runner._children.clear()  # an app restart: only the rows remain
    try:
        jobs.mark_started(recycled, os.getpid(), os.getpid())  # alive, but not our run module
        assert runner.reconcile() == {recycled: "failed"}
        assert jobs.get_job(live)["status"] == "running"
        assert runner.reconcile() == {}
    finally:
        runner._children.update(held)


def test_max_jobs_limits_concurrent_jobs(monkeypatch):
    monkeypatch.setenv("MEDUI_MAX_JOBS", "2")
    assert runner.max_slots() == 2
    first, second, third = (jobs.submit(TINY_ECG, "dr.a", job_id=f"j{i}") for i in range(3))
    assert runner.start_next(SLEEP) == [first, second]
    assert runner.start_next(SLEEP) == []
    assert [r["job_id"] for r in jobs.list_jobs("queued")] == [third]
    jobs.cancel(first, "dr.a", grace_s=2)
    assert runner.start_next(SLEEP) == [third]
    assert sorted(r["job_id"] for r in jobs.list_jobs("running")) == [second, third]
    monkeypatch.setenv("MEDUI_MAX_JOBS", "0")
    with pytest.raises(ValueError, match="MEDUI_MAX_JOBS must be positive"):
        runner.max_slots()
    monkeypatch.delenv("MEDUI_MAX_JOBS")
    monkeypatch.setenv("MEDUI_DEVICE", "cpu")
    assert runner.max_slots() == 1


def test_cancelling_a_queued_job_needs_no_process():
    job_id = jobs.submit(TINY_ECG, "dr.a")
    assert jobs.cancel(job_id, "dr.a")["status"] == "cancelled"
    assert runner.start_next(SLEEP) == []


def test_cli_list_show_cancel_and_one_line_errors(cli, monkeypatch):
    monkeypatch.setattr(runner, "COMMAND", SLEEP)
    code, out, err = cli("train", "--task", "ecg", "--max-steps", "2", "--submit")
    assert code == 0, err
    running = out.strip()
    code, out, _ = cli("train", "--task", "ecg", "--max-steps", "2", "--submit", "--json")
    queued = json.loads(out)
    assert code == 0 and queued["status"] == "queued" and queued["spec"]["max_steps"] == 2

    code, out, _ = cli("jobs", "list", "--json")
    assert code == 0 and {r["job_id"]: r["status"] for r in json.loads(out)} == {running: "running",
                                                                               queued["job_id"]: "queued"}
    code, out, _ = cli("jobs", "list", "--status", "running")
    assert code == 0 and running in out and queued["job_id"] not in out and "STATUS" in out

    (job_dir(running) / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    code, out, _ = cli("jobs", "show", running, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "running" and shown["metrics_tail"] == [{"step": 1, "loss": 0.5}]
    assert isinstance(shown["log_tail"], list)
    code, out, _ = cli("jobs", "show", running)
    assert code == 0 and f"job {running}: running" in out and "last metrics:" in out and "log tail:" in out

    code, out, _ = cli("jobs", "cancel", running, "--actor", "dr.c")
    assert code == 0 and out.strip() == f"job {running} cancelled"
    assert jobs.get_job(queued["job_id"])["status"] == "running"  # the freed slot went to the queued job

    for argv, message in [
        (("jobs", "show", "nosuch"), "no job nosuch"),
        (("jobs", "cancel", running), f"job {running} already cancelled"),
        (("jobs", "list", "--status", "done"), "unknown status 'done'"),
        (("train", "--task", "ecg", "--method", "qlora", "--submit"), "unknown method 'qlora'"),
        (("train", "--resume", "x", "--submit"), "--submit cannot resume a job"),
    ]:
        code, out, err = cli(*argv)
        assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith(f"error: {message}"), err
    assert len(jobs.list_jobs()) == 2
