"""Access control (issue 8): who can reach which page, action and data, and what leaves the app in its logs.

Proved elsewhere, not repeated here: repeated failed sign-ins lock the account
(test_auth.py::test_repeated_failures_lock_the_account), idle expiry of a session
(test_auth.py::test_sessions_resume_until_idle_timeout, ::test_idle_timeout_is_configurable) and an edited or deleted
audit row being named (test_audit.py::test_an_edited_row_is_named, ::test_a_deleted_middle_row_is_detected).
"""

from __future__ import annotations

import io
import json
import logging
import stat
import tomllib
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select, update
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from medui import audit, auth, records, registry
from medui.auth import RoleRefused
from medui.cli.common import cli_actor
from medui.notes.corrections import training_jsonl
from medui.store import session_scope
from medui.store.models import Analysis, TrainingJob, User, UserSession
from medui.training import jobs

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Correct-Horse-9"
PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py") if p.name != "sign_in.py")
ADMIN_PAGES = [p for p in PAGES if p.startswith("admin_")]
SIGN_IN_REFUSAL = "Please sign in to use MedUI."

# Recognisable PHI: none of it may appear in a log line.
PATIENT_NAME, PATIENT_GIVEN = "Quuxworth", "Zebediah"
PATIENT_ID = "MRN-99887766"
NOTE_PHRASE = "xylophone-shaped rash"
NOTE = (f"{PATIENT_GIVEN} {PATIENT_NAME} ({PATIENT_ID}) denies chest pain. Hx of T2DM on metformin 500 mg PO BID. "
        f"Noted a {NOTE_PHRASE} on the left forearm.")
PHI = (PATIENT_NAME, PATIENT_GIVEN, PATIENT_ID, NOTE_PHRASE)


@pytest.fixture
def clinician() -> str:
    auth.create_user("dr.grey", PASSWORD, "clinician", actor="test")
    return "dr.grey"


@pytest.fixture
def colleague() -> str:
    auth.create_user("dr.white", PASSWORD, "clinician", actor="test")
    return "dr.white"


@pytest.fixture
def admin() -> str:
    auth.create_user("boss", PASSWORD, "admin", actor="test")
    return "boss"


@pytest.fixture(autouse=True)
def _restore_pages_flag():
    """`page` flips Streamlit's class-wide flag; other modules' tests must find it as they left it."""
    flag = PagesManager.uses_pages_directory
    yield
    PagesManager.uses_pages_directory = flag


def page(name: str, token: str | None = None, timeout: float = 60, routed: bool = False) -> AppTest:
    """One file of pages/ run as its own script: as Streamlit serves `pages/` before any router has run, or
    (`routed`) as app.py's router runs it."""
    PagesManager.uses_pages_directory = not routed
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=timeout)
    if token:
        at.session_state["medui_token"] = token
    return at


def page_content(at: AppTest) -> list:
    """Every element a page put on screen that could carry its content (inputs, tables, text, uploads)."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "dataframe", "table", "json", "code", "button",
             "text_input", "text_area", "selectbox", "multiselect", "checkbox", "radio", "number_input",
             "file_uploader", "download_button", "metric", "info", "success", "warning")
    return [element for kind in kinds for element in at.get(kind)]


# --- signed out ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PAGES)
def test_every_page_file_run_without_a_session_shows_only_the_refusal(name):
    at = page(name).run()
    assert not at.exception
    assert [e.value for e in at.error] == [SIGN_IN_REFUSAL]
    assert page_content(at) == []
    assert len(at.sidebar) == 0


@pytest.mark.parametrize("token", ["forged", "ended"])
def test_a_forged_or_ended_session_token_is_the_same_as_none(token):
    auth.create_user("dr.gone", PASSWORD, "clinician", actor="test")
    live = auth.start_session("dr.gone")
    if token == "forged":
        token = live[:-3] + ("AAA" if not live.endswith("AAA") else "BBB")
    else:
        token = live
        auth.end_all_sessions("dr.gone")
    at = page("records.py", token).run()
    assert [e.value for e in at.error] == [SIGN_IN_REFUSAL]
    assert page_content(at) == []


def test_the_signed_out_router_registers_the_sign_in_page_and_nothing_else():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    for name in PAGES:
        with pytest.raises(ValueError, match="Known pages: \\['.*sign_in.py'\\]"):
            at.switch_page(f"pages/{name}")


# --- clinician versus admin ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_a_clinician_running_an_admin_page_file_gets_no_admin_content(clinician, name):
    at = page(name, auth.start_session(clinician)).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is for administrators."]
    assert page_content(at) == []
    assert audit.events(action="page_refused")[0]["actor"] == clinician


def test_a_demoted_admin_loses_the_admin_pages_on_the_next_run_of_the_same_session(admin):
    auth.create_user("boss2", PASSWORD, "admin", actor="test")
    at = page("admin_users.py", auth.start_session(admin)).run()
    assert not at.error and at.dataframe
    auth.set_role(admin, "clinician", actor="boss2")
    at.run()
    assert [e.value for e in at.error] == ["This page is for administrators."]
    assert not at.dataframe


@pytest.fixture
def candidate(tmp_path, shipped_models):
    """Two registered versions of a tiny model, v1 in production: something to promote, roll back and import."""
    import torch
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    for value in (1.0, 2.0):
        save_file({"w": torch.full((2,), value)}, str(weights))
        registry.register_version("demo", "ecg", {"model.safetensors": weights}, base_model="none", method="full",
                                  labels=[], metrics={}, provenance={}, actor="test")
    registry.promote("demo", "1", actor="test")
    return weights


def _queued_job(admin: str) -> str:
    with session_scope() as session:
        session.add(TrainingJob(job_id="queued-1", status="queued", task="ecg", method="lora", spec={},
                                created_by=admin, created_at=datetime.now(timezone.utc), log_path="log.txt"))
    return "queued-1"


def _job_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(TrainingJob))


PRIVILEGED = {  # action audited as refused -> (the call a page would make as `actor`, what must be unchanged)
    "user_add": (lambda actor, ctx: auth.create_user("mallory", PASSWORD, "admin", actor=actor),
                 lambda ctx: [u.username for u in auth.list_users()]),
    "role_change": (lambda actor, ctx: auth.set_role(actor, "admin", actor=actor),  # promoting oneself
                    lambda ctx: [(u.username, u.role) for u in auth.list_users()]),
    "user_disable": (lambda actor, ctx: auth.set_active(ctx["admin"], False, actor=actor),
                     lambda ctx: [(u.username, u.active) for u in auth.list_users()]),
    "password_reset": (lambda actor, ctx: auth.reset_password(ctx["admin"], actor=actor),
                       lambda ctx: auth.authenticate(ctx["admin"], PASSWORD).must_change_password),
    "model_promote": (lambda actor, ctx: registry.promote("demo", "2", actor=actor),
                      lambda ctx: registry.production_versions()),
    "model_rollback": (lambda actor, ctx: registry.rollback("demo", actor=actor),
                       lambda ctx: registry.production_versions()),
    "model_import": (lambda actor, ctx: registry.import_model(ctx["weights"], task="ecg", actor=actor, name="evil"),
                     lambda ctx: [(v.name, v.version) for v in registry.list_versions()]),
    "training_submit": (lambda actor, ctx: jobs.submit({"task": "ecg", "method": "lora", "max_steps": 2}, actor),
                        lambda ctx: _job_count()),
    "training_cancel": (lambda actor, ctx: jobs.cancel(ctx["job"], actor),
                        lambda ctx: jobs.get_job(ctx["job"])["status"]),
    "annotations_export": (lambda actor, ctx: training_jsonl(actor), lambda ctx: None),
}


@pytest.mark.parametrize("action", sorted(PRIVILEGED))
def test_privileged_actions_refuse_a_clinician_whatever_the_page_shows(clinician, admin, candidate, action):
    ctx = {"admin": admin, "weights": candidate, "job": _queued_job(admin)}
    attempt, state = PRIVILEGED[action]
    before = state(ctx)
    with pytest.raises(RoleRefused, match="Only an admin may do this") as refusal:
        attempt(clinician, ctx)
    assert isinstance(refusal.value, PermissionError)
    assert state(ctx) == before
    event = audit.events(actor=clinician)[0]
    assert (event["action"], event["outcome"]) == (action, "refused")


def test_a_disabled_admin_account_cannot_act(admin, candidate):
    auth.create_user("boss2", PASSWORD, "admin", actor="test")
    auth.set_active(admin, False, actor="boss2")
    with pytest.raises(RoleRefused):
        registry.promote("demo", "2", actor=admin)
    registry.promote("demo", "2", actor="boss2")  # an active admin may
    assert registry.production_versions() == {"demo": "2"}


def test_cli_operators_are_never_accounts_and_an_actor_naming_a_clinician_is_refused(cli, clinician, candidate):
    """The CLI runs on the server as an operator (its actor `cli:<os user>` cannot be a username); naming a
    clinician as --actor does not borrow their identity for an admin action."""
    assert ":" in cli_actor() and not auth.USERNAME_PATTERN.match(cli_actor())
    with pytest.raises(auth.AuthError):
        auth.create_user(cli_actor(), PASSWORD, "admin", actor="test")
    code, _, err = cli("models", "promote", "demo", "2", "--actor", clinician)
    assert code == 1 and err.startswith("error: Only an admin may do this (model_promote)")
    assert registry.production_versions() == {"demo": "1"}
    code, out, err = cli("models", "promote", "demo", "2")
    assert code == 0, err
    assert registry.production_versions() == {"demo": "2"}
    assert audit.events(action="model_promote")[0]["actor"] == cli_actor()


# --- other users' unsaved work ---------------------------------------------------------------------------------------

@pytest.fixture
def fake_notes_model(monkeypatch):
    """The notes page's extraction calls without a model: the question here is where the text goes, not entities."""

    def iter_extract(texts, *, model=None, sources=None, progress=None):
        for n, text in enumerate(texts, 1):
            yield {"source": None, "entities": [], "medications": [], "model": {"name": "notes-ner", "version": "1"},
                   "vocabularies": {}, "chars_total": len(text), "chars_processed": len(text)}
            if progress:
                progress(n)

    monkeypatch.setattr("medui.notes.extract.load_model", lambda version=None: object())
    monkeypatch.setattr("medui.notes.extract.iter_extract", iter_extract)


def _files_containing(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("how", ["pasted", "uploaded"])
def test_an_unsaved_note_stays_in_its_own_browser_session(clinician, colleague, fake_notes_model, medui_home, how):
    """Unsaved input lives in Streamlit's per-session state only: another user's session, the records search and
    the disk (database included) hold none of it until the author saves."""
    author = page("notes.py", auth.start_session(clinician), routed=True).run()
    if how == "pasted":
        author.text_area(key="notes_text").input(NOTE).run()
    else:
        author.get("file_uploader")[0].upload("note.txt", NOTE.encode(), "text/plain").run()
    author.text_input(key="notes_patient").input(PATIENT_ID).run()
    next(b for b in author.button if b.label == "Analyse").click().run()
    assert not author.exception and not author.error

    other = page("notes.py", auth.start_session(colleague), routed=True).run()
    assert other.text_area(key="notes_text").value == "" and other.text_input(key="notes_patient").value == ""
    assert not other.dataframe
    assert [i.value for i in other.info] == ["Paste a note, upload a file, or load a sample."]
    assert records.search_notes(words=PATIENT_NAME) == [] and records.recent_analyses(clinician) == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Analysis)) == 0
    for needle in PHI:
        assert _files_containing(medui_home, needle) == []


def test_an_uploaded_zip_is_unpacked_into_a_private_folder_that_is_removed(tmp_path, monkeypatch):
    """The one place an upload touches the disk before it is saved: the imaging page's ZIP scratch folder."""
    import tempfile

    from pydicom.data import get_testdata_file

    from medui.imaging import uploads

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    real_extract = uploads.extract_zip

    def spy(data, root):
        seen.append((Path(root), stat.S_IMODE(Path(root).stat().st_mode)))
        return real_extract(data, root)

    monkeypatch.setattr(uploads, "extract_zip", spy)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(get_testdata_file("CT_small.dcm", download=False), "series/1.dcm")
    studies, refused = uploads.load_uploads([("study.zip", buffer.getvalue())])
    assert studies and not refused
    [(root, mode)] = seen
    assert mode == 0o700 and root.parent == tmp_path.resolve()  # owner-only, under the temp root, random name
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_saved_analyses_are_shared_with_the_hospitals_clinicians_and_each_opening_is_audited(clinician, colleague):
    """Records are the hospital's, not one clinician's: any clinician may open a saved analysis (as on paper
    charts), and the audit trail names who opened which patient's record."""
    analysis_id = records.save_analysis("notes", {"text": NOTE, "entities": []}, created_by=clinician,
                                        input_sha256="0" * 64, patient=PATIENT_ID)
    at = page("records.py", auth.start_session(colleague), routed=True)
    at.query_params["analysis"] = str(analysis_id)
    at.run()
    assert not at.exception and not at.error
    assert f"Analysis {analysis_id}" in [s.value for s in at.subheader]
    viewed = audit.events(action="analysis_view")[0]
    assert (viewed["actor"], viewed["patient"], viewed["detail"]) == (colleague, PATIENT_ID,
                                                                      {"analysis_id": analysis_id})
    assert records.recent_analyses(colleague) == []  # "my recent work" stays one's own


# --- session expiry --------------------------------------------------------------------------------------------------

def test_an_idle_session_is_ended_on_the_page_and_stays_ended(clinician):
    token = auth.start_session(clinician)
    with session_scope() as session:
        session.execute(update(UserSession).values(last_seen_at=datetime.now(timezone.utc) - timedelta(minutes=31)))
    at = page("notes.py", token).run()
    assert [e.value for e in at.error] == [SIGN_IN_REFUSAL]
    assert audit.events(action="session_expired")[0]["actor"] == clinician
    with session_scope() as session:  # the row is ended, not just stale: fresh activity cannot revive it
        session.execute(update(UserSession).values(last_seen_at=datetime.now(timezone.utc)))
    assert auth.resume_session(token) is None


def test_a_session_never_outlives_its_absolute_lifetime_however_active(clinician, monkeypatch):
    from medui.auth.sessions import ABSOLUTE_LIFETIME

    issued = datetime.now(timezone.utc) - ABSOLUTE_LIFETIME - timedelta(minutes=1)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(issued.timestamp()))
    token = auth.start_session(clinician)
    monkeypatch.undo()
    with session_scope() as session:  # used a second ago: idle expiry alone would keep it
        session.execute(update(UserSession).values(last_seen_at=datetime.now(timezone.utc)))
    assert auth.resume_session(token) is None


def test_a_cookie_signed_with_another_key_opens_nothing(clinician, monkeypatch):
    monkeypatch.setenv("MEDUI_SECRET_KEY", "key-of-another-install-" + "x" * 20)
    token = auth.start_session(clinician)
    assert auth.resume_session(token).username == clinician
    monkeypatch.setenv("MEDUI_SECRET_KEY", "the-real-key-of-this-install-" + "y" * 20)
    assert auth.resume_session(token) is None


# --- no PHI in logs --------------------------------------------------------------------------------------------------

def _dicom_with_phi(tmp_path: Path, source: str) -> Path:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(source, download=False))
    ds.PatientName, ds.PatientID = f"{PATIENT_NAME}^{PATIENT_GIVEN}", PATIENT_ID
    ds.StudyDescription = NOTE_PHRASE
    path = tmp_path / "study.dcm"
    ds.save_as(path)
    return path


def _notes_args(tmp_path: Path) -> list[str]:
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    return ["notes", str(path), "--save", "--patient", PATIENT_ID]


def _cgm_args(tmp_path: Path) -> list[str]:
    from medui.signals.cgm.samples import dexcom_csv

    path = tmp_path / "export.csv"
    path.write_bytes(dexcom_csv().replace(b"SYNTHETIC", PATIENT_GIVEN.encode()).replace(b"SAMPLE", PATIENT_NAME.encode()))
    return ["cgm", str(path)]


def _risk_args(tmp_path: Path) -> list[str]:
    from medui.risk.assessment import SAMPLE_PATIENT

    return ["risk", "pce", "--input", json.dumps(SAMPLE_PATIENT), "--patient", PATIENT_ID]


COMMANDS = {
    "notes": _notes_args,
    "dicom": lambda tmp_path: ["dicom", str(_dicom_with_phi(tmp_path, "CT_small.dcm"))],
    "ecg": lambda tmp_path: ["ecg", str(_dicom_with_phi(tmp_path, "waveform_ecg.dcm"))],
    "cgm": _cgm_args,
    "risk": _risk_args,
}


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c == "notes" else c for c in COMMANDS])
def test_cli_commands_log_no_phi_even_at_debug(command, cli, caplog, tmp_path, medui_home):
    """Results (stdout) name the patient on purpose; log records, stderr (where libraries with their own handlers
    log) and log files under MEDUI_HOME never do."""
    caplog.set_level(logging.DEBUG)
    code, out, err = cli(*COMMANDS[command](tmp_path))
    assert code == 0, err
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + err
    log_files = [p for p in medui_home.rglob("*") if p.is_file() and ("log" in p.name.lower())]
    for needle in PHI:
        assert needle not in logged, f"{needle!r} was logged"
        assert [p for p in log_files if needle.encode() in p.read_bytes()] == []


# --- server settings -------------------------------------------------------------------------------------------------

def test_streamlit_server_settings_keep_xsrf_on_and_details_and_telemetry_off():
    from streamlit import config as streamlit_config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    known = streamlit_config._config_options_template
    for section, values in settings.items():  # a misspelt key is silently ignored by Streamlit
        for key in values:
            assert f"{section}.{key}" in known, f"unknown Streamlit option {section}.{key}"
    assert settings["server"]["enableXsrfProtection"] is True
    assert settings["server"].get("enableCORS", True) is True
    assert settings["client"]["showErrorDetails"] == "none"
    assert settings["client"]["toolbarMode"] == "viewer"
    assert settings["browser"]["gatherUsageStats"] is False
    assert settings["server"].get("address") in (None, "127.0.0.1", "localhost")  # behind a proxy, never 0.0.0.0


@pytest.mark.slow
def test_a_live_server_refuses_an_upload_without_the_xsrf_token(live_server):
    """A cross-site page cannot post a file into someone's session: the upload endpoint wants the XSRF token
    that only a page served by MedUI can read from its cookie."""
    import urllib.error
    import urllib.request

    base, _, _ = live_server
    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=30) as response:
        cookies = [c.split(";")[0] for c in response.headers.get_all("Set-Cookie") or []]
    [xsrf] = [c.split("=", 1)[1] for c in cookies if c.startswith("_streamlit_xsrf=")]
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello\r\n--b--\r\n")

    def put(headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(f"{base}/_stcore/upload_file/some-session/some-file", data=body,
                                         method="PUT", headers={"Content-Type": "multipart/form-data; boundary=b",
                                                                **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    code, text = put({"Origin": "https://evil.example"})
    assert code == 403 and "XSRF" in text
    code, text = put({"Cookie": f"_streamlit_xsrf={xsrf}", "X-Xsrftoken": xsrf})
    assert code != 403, text  # with the token it gets past the check (and fails later: no such session)


def test_every_account_guard_is_checked_on_the_role_in_the_database(clinician):
    """require_role reads the role each time: a stale UserInfo held by a page cannot keep admin rights."""
    auth.require_role(clinician, "clinician", "anything")
    with session_scope() as session:
        session.execute(update(User).where(User.username == clinician).values(role="admin"))
    auth.require_role(clinician, "admin", "anything")
    with pytest.raises(RoleRefused):
        auth.require_role(clinician, "clinician", "anything")
