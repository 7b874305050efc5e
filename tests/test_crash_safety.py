"""Crash safety: SIGKILL a process while it saves a batch of analyses, or while a training job runs, then check
what a restart finds. Every kill here is a real SIGKILL of a real process; nothing is simulated in-process."""

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


# The writer: saves the batch one note at a time through records.save_analysis, exactly as the Notes page's
# "Save N notes to the record" button does, and after each save returns appends "<i> <analysis id>" to the
# progress file and fsyncs it, so a line there means the save was reported completed. With KILL_AT set it
# SIGKILLs itself just before its first audit INSERT after KILL_AFTER completed saves: the worst moment for
# a save that commits its analysis and its audit event separately.
WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from tests.test_crash_safety import note_result
    from medui import records
    from medui.store import engine
    from sqlalchemy import event

    progress, first, count, kill_after = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    done = 0
    if kill_after >= 0:
        @event.listens_for(engine(), "before_cursor_execute")
        def _die(conn, cursor, statement, *args):
            if done >= kill_after and statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
                os.kill(os.getpid(), signal.SIGKILL)
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
