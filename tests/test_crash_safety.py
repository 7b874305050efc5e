"""Crash safety: SIGKILL a process while it saves a batch of analyses, or while a training job runs, then check
what a restart finds. Every kill here is a real SIGKILL of a real process; nothing is simulated in-process.

What the product promises: a batch is saved one transaction per analysis (records.save_analysis, the analysis,
its patient row and its audit event together), so every note reported saved stays saved and a note in flight is
all there or not at all; SQLite runs in WAL mode with synchronous=FULL. A job's worker runs in its own session,
so it outlives the web app; every start (app or `medui init`, through bootstrap) reconciles the job rows: a job
whose worker is gone becomes failed with its log's tail (or succeeded if it finished meanwhile), a live one stays
running."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medui import audit, records
from medui.config import settings
from medui.store import reset_engines, session_scope
from medui.store.models import Analysis, AuditEvent, Patient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BATCH = 400  # more notes than any round gets through before its kill
ENTITIES = 120  # a note result of about 15 kB, so a kill often lands inside a write


def note_result(i: int) -> dict:
    """The i-th note of the batch, shaped like the Notes page's result, with a digest of its entities."""
    entities = [{"text": f"metformin {i}-{k}", "label": "MEDICATION", "start": k * 12, "end": k * 12 + 9,
                 "status": "model", "assertion": "present", "codes": [{"code": f"E11.{k % 10}"}]}
                for k in range(ENTITIES)]
    digest = hashlib.sha256(json.dumps(entities, sort_keys=True).encode()).hexdigest()
    return {"source": f"ward.csv row {i}", "text": f"Note {i}: on metformin.", "entities": entities,
            "digest": digest, "model": {"name": "notes-ner", "version": "1"}}


# Child processes: `die_before_audit(ready)` SIGKILLs the process at its next audit INSERT once ready() is true,
# the worst moment for work that commits its rows and their audit event separately.
DIE_BEFORE_AUDIT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from sqlalchemy import event
    from medui.store import engine

    def die_before_audit(ready):
        @event.listens_for(engine(), "before_cursor_execute")
        def _die(conn, cursor, statement, *args):
            if ready() and statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
                os.kill(os.getpid(), signal.SIGKILL)
""")

# The writer: saves the batch one note at a time through records.save_analysis, exactly as the Notes page's
# "Save N notes to the record" button does, and after each save returns appends "<i> <analysis id>" to the
# progress file and fsyncs it, so a line there means the save was reported completed. With KILL_AFTER >= 0 it
# dies before its first audit INSERT after that many completed saves.
WRITER = DIE_BEFORE_AUDIT + textwrap.dedent("""
    from tests.test_crash_safety import note_result
    from medui import records

    progress, first, count, kill_after = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    done = 0
    if kill_after >= 0:
        die_before_audit(lambda: done >= kill_after)
    with open(progress, "a") as out:
        for i in range(first, first + count):
            result = note_result(i)
            analysis_id = records.save_analysis(
                "notes", result, created_by="dr.crash", patient=f"P-{i}",
                input_sha256=records.input_hash(result["text"].encode()), model_name="notes-ner", model_version="1")
            out.write(f"{i} {analysis_id}\\n")
            out.flush()
            os.fsync(out.fileno())
            done += 1
""")

# A clinician's review of a saved note (every entity rejected, as when all rows are deleted in the review table),
# killed before its audit event is written.
REVIEWER = DIE_BEFORE_AUDIT + textwrap.dedent("""
    from medui.notes.corrections import save_review

    die_before_audit(lambda: True)
    save_review(int(sys.argv[2]), [], actor="dr.crash")
""")


def start_writer(progress: Path, first: int, kill_after: int = -1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(progress), str(first), str(BATCH),
                             str(kill_after)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def reported(progress: Path) -> dict[int, int]:
    """{note index: analysis id} of every save the writer reported completed (whole lines only)."""
    if not progress.exists():
        return {}
    lines = progress.read_text().split("\n")[:-1]  # a line cut by the kill has no newline yet
    return {int(i): int(a) for i, a in (line.split() for line in lines)}


def wait_for_lines(progress: Path, count: int, child: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(reported(progress)) < count:
        assert child.poll() is None, f"the writer ended early: {child.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, f"the writer saved fewer than {count} notes in {timeout_s} s"
        time.sleep(0.005)


def sqlite_file() -> Path | None:
    url = settings().database_url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def check_database(expected: dict[int, int]) -> int:
    """The database after a crash: intact, every reported save whole, nothing half-saved. Returns the number of
    stored analyses."""
    reset_engines()  # a restart: nothing cached from before the kill
    path = sqlite_file()
    if path is not None:
        with sqlite3.connect(path) as db:  # opening it replays or discards the WAL the killed writer left
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    with session_scope() as session:
        stored = {a.id: a for a in session.scalars(select(Analysis))}
        patients = {p.id: p.identifier for p in session.scalars(select(Patient))}
        audited = [e.detail["analysis_id"] for e in session.scalars(select(AuditEvent)
                                                                        .where(AuditEvent.action == "analysis"))]
        with_analyses = set(session.scalars(select(Analysis.patient_id).group_by(Analysis.patient_id)
                                            .having(func.count() > 0)))
    for i, analysis_id in expected.items():  # every save reported completed is there, whole
        assert analysis_id in stored, f"reported save {i} (analysis {analysis_id}) is missing"
        assert stored[analysis_id].result == note_result(i)
        assert patients[stored[analysis_id].patient_id] == f"P-{i}"
    for analysis in stored.values():  # no partial one: complete result, its patient, one audit event
        i = int(analysis.result["source"].rsplit(" ", 1)[1])
        assert analysis.result == note_result(i), f"analysis {analysis.id} is stored incomplete"
        assert hashlib.sha256(json.dumps(analysis.result["entities"], sort_keys=True).encode()).hexdigest() == \
            analysis.result["digest"]
    assert sorted(audited) == sorted(stored), "every stored analysis has exactly one audit event, and no other"
    assert set(patients) == with_analyses, "a patient row was left without the analysis that created it"
    assert len(stored) - len(expected) <= 1, "at most the save in flight committed without being reported"
    chain = audit.verify()
    assert chain.ok, chain.problems
    return len(stored)


def test_sqlite_is_in_wal_mode_with_full_sync():
    """Committed saves survive a killed process (WAL) and a power cut (synchronous=FULL syncs every commit)."""
    if sqlite_file() is None:
        pytest.skip("SQLite settings only")
    with session_scope() as session:
        connection = session.connection()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_killing_the_writer_mid_batch_keeps_every_completed_save_and_no_partial_one(tmp_path):
    expected = {-1: records.save_analysis("notes", note_result(-1), created_by="dr.crash", patient="P--1",
                                          input_sha256="0" * 64)}
    progress = tmp_path / "progress.txt"
    rng = random.Random(8)
    first = 0
    for round_no in range(6):
        if round_no < 4:  # killed from outside after a few reported saves and a random moment more
            child = start_writer(progress, first)
            wait_for_lines(progress, len(expected) - 1 + rng.randint(1, 4), child)
            time.sleep(rng.uniform(0, 0.05))
            child.send_signal(signal.SIGKILL)
        else:  # kills itself between a save's analysis INSERT and its audit event
            child = start_writer(progress, first, kill_after=rng.randint(0, 3))
        child.wait(timeout=120)
        stderr = child.stderr.read().decode()
        assert child.returncode == -signal.SIGKILL, stderr[-2000:]
        expected.update(reported(progress))
        stored = check_database(expected)
        first = max(expected) + 2  # past the one in flight, which may have committed unreported
    assert stored >= len(expected) >= 10


def test_a_review_killed_before_its_audit_event_leaves_no_annotation():
    from medui.notes.corrections import save_review
    from medui.store.models import Annotation

    analysis_id = records.save_analysis("notes", note_result(0), created_by="dr.crash", patient="P-0",
                                        input_sha256="0" * 64)
    child = subprocess.run([sys.executable, "-c", REVIEWER, str(ROOT), str(analysis_id)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    reset_engines()

    def stored() -> tuple[int, int]:
        with session_scope() as session:
            return (session.scalar(select(func.count()).select_from(Annotation)),
                    session.scalar(select(func.count()).where(AuditEvent.action == "annotation")))

    assert stored() == (0, 0)  # all of the review or none of it, never unaudited rows
    assert save_review(analysis_id, [], actor="dr.crash")["reject"] == ENTITIES  # the review can simply be redone
    assert stored() == (ENTITIES, 1)


# The web app's side of training, in its own process: the start-up every app start runs, then the tick the Admin
# Training page runs on each rerun (which launches queued jobs). argv[1], if given, is a folder for a stand-in
# worker: it waits for <folder>/go, then writes a completed result.json, as a real job does when it ends.
APP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from medui.bootstrap import bootstrap
    from medui.training import runner
    from medui.training.job import job_dir

    STUB = ("import sys, time, pathlib\\n"
            "go, result = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])\\n"
            "while not go.exists(): time.sleep(0.05)\\n"
            "result.write_text(sys.argv[5])\\n")
    RESULT = '{"status": "completed", "model": "ecg-rhythm", "version": "9", "metrics": {"auroc": 0.9}}'
    if len(sys.argv) > 1:
        go = Path(sys.argv[1]) / "go"
        runner.COMMAND = lambda spec, job_id, actor: [sys.executable, "-c", STUB, runner.RUN_MODULE, job_id, str(go),
                                                      str(job_dir(job_id) / "result.json"), RESULT]
    bootstrap()
    while True:
        runner.tick()
        time.sleep(0.2)
""")


def start_app(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", APP, *argv], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def restart() -> None:
    """The product's start-up path in a fresh process, as after the server came back."""
    done = subprocess.run([sys.executable, "-m", "medui", "init"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    reset_engines()


def wait_until(condition, what: str, app: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert app.poll() is None, f"the app process ended: {app.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.1)


def kill(pid: int, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def ended(pid: int) -> bool:
    """Gone, or a zombie (its parent, the killed app, cannot reap it any more)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_worker_and_app_leave_a_failed_job_with_its_log_after_a_restart(one_job_slot):
    from medui.training import jobs

    job_id = jobs.submit({"task": "ecg", "method": "lora", "max_steps": 500, "batch_size": 4, "eval_steps": 500,
                          "logging_steps": 1}, "admin.crash")
    app = start_app()
    worker = None
    try:
        log = Path(jobs.get_job(job_id)["log_path"])
        # A real worker, killed once it is training (model built, steps about to run or running).
        wait_until(lambda: log.is_file() and "parameters trainable" in log.read_text(), "training", app)
        worker = jobs.get_job(job_id)["pid"]
        kill(app.pid)  # the web app first, so nothing alive can notice the worker's end before the restart
        app.wait(timeout=30)
        kill(worker)
        deadline = time.monotonic() + 30
        while not ended(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ended(worker)
        before = log.read_text()
        assert jobs.get_job(job_id)["status"] == "running"  # the orphan a restart must clear

        restart()
        row = jobs.get_job(job_id)
        assert row["status"] == "failed" and row["finished_at"]
        assert row["error"].splitlines()[0] == "the job's process ended without a result"
        assert row["error"].splitlines()[-1] == before.splitlines()[-1]  # the log's tail, in the row
        assert log.read_text() == before  # the log itself is kept as it was
        assert jobs.list_jobs("running") == []
    finally:
        kill(app.pid)
        if worker:
            kill(worker, group=True)  # and anything it started (its own process group)


def test_a_worker_killed_under_a_running_app_is_failed_by_its_next_tick_with_the_signal_and_log(one_job_slot):
    from medui.training import jobs, runner

    job_id = jobs.submit({"task": "ecg", "method": "lora", "max_steps": 2}, "admin.crash")
    code = "import time\nprint('step 1/500  loss 0.69', flush=True)\ntime.sleep(120)"
    runner.start_next(lambda spec, job, actor: [sys.executable, "-c", code, runner.RUN_MODULE, job])
    row = jobs.get_job(job_id)
    log = Path(row["log_path"])
    deadline = time.monotonic() + 60
    while "step 1/500" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    kill(row["pid"])
    runner._children[job_id].wait(timeout=30)
    assert runner.tick() == {job_id: "failed"}
    assert jobs.get_job(job_id)["error"].splitlines() == ["the job's process was killed by SIGKILL before it finished",
                                                          "step 1/500  loss 0.69"]
    assert log.read_text() == "step 1/500  loss 0.69\n"


def test_a_worker_outliving_the_killed_app_stays_running_across_a_restart_and_then_succeeds(one_job_slot, tmp_path):
    from medui.training import jobs, runner

    job_id = jobs.submit({"task": "ecg", "method": "lora", "max_steps": 2}, "admin.crash")
    app = start_app(str(tmp_path))
    worker = None
    try:
        wait_until(lambda: jobs.get_job(job_id)["pid"] is not None, "worker", app, timeout_s=120)
        worker = jobs.get_job(job_id)["pid"]
        kill(app.pid)
        app.wait(timeout=30)
        assert not ended(worker)  # its own session: the app's death does not take the job with it

        restart()
        assert jobs.get_job(job_id)["status"] == "running"  # alive and still this job's process: not an orphan

        (tmp_path / "go").touch()
        deadline = time.monotonic() + 60
        while not ended(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.tick() == {job_id: "succeeded"}  # the next page rerun records how the job ended
        row = jobs.get_job(job_id)
        assert row["status"] == "succeeded", row["error"]
        assert row["result"]["model"] == "ecg-rhythm" and row["result"]["version"] == "9"
        assert jobs.list_jobs("running") == []
    finally:
        kill(app.pid)
        if worker:
            kill(worker, group=True)  # and anything it started (its own process group)
