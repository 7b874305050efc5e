"""Clinical journeys in a real Chromium (Debian's, driven by Playwright) against one `streamlit run` on 127.0.0.1.

Each journey starts from sign-in as a clinician added from the CLI: a note to entities, saved and found on Records;
a DICOM series zip to the viewer, a window preset, the attribution overlay, the trust panel and the de-identified
export re-read with pydicom; an ECG to rhythm and attribution; a CGM export to metrics and AGP; the risk form to
scores and a what-if. A hostile note shows that note text is never executed or rendered as HTML, and the last
test greps the server's terminal log and every log file under its MEDUI_HOME for the PHI and note text used.

Every step leaves a screenshot under test-output/<test>/NN-<step>.png; the folder is deleted when the test passes
and kept (with conftest's failure.png) when it fails.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from browser_harness import ROOT, Steps, choose, open_page, require_browser, set_number, sign_in, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()

USERNAME, PASSWORD = "dr.foreman", "Neurology-desk-8"
MODEL_MS = 300_000  # first load of a model (notes, imaging, ECG): up to ~150 s seen on a 2-core machine at load 29
PATIENT_NAME = "Quarles-Vance^Henrietta"
NOTE_PATIENT, DICOM_PATIENT, ECG_PATIENT, CGM_SUBJECT, CGM_PATIENT = (
    "MRN-55120987", "MRN-77310452", "MRN-66204913", "CGM-Quarles-4471", "MRN-81937465")
NOTE = ("Patient Henrietta Quarles-Vance seen in clinic for follow-up.\n"
        "Assessment: type 2 diabetes mellitus, poorly controlled. Denies chest pain.\n"
        "Plan: start metformin 500 mg PO BID. Check HbA1c in 3 months.")
XSS_NOTE = ("Seen today for cough. <script>window.__xss=1</script> Started amoxicillin 500 mg PO TID.\n"
            'History of asthma. <img src=x onerror="window.__xss=1"> No fever.')
PHI = [PATIENT_NAME, "Quarles-Vance", "Henrietta", NOTE_PATIENT, DICOM_PATIENT, ECG_PATIENT, CGM_SUBJECT, CGM_PATIENT,
       *NOTE.splitlines(), *XSS_NOTE.splitlines(), "window.__xss=1"]
journeys_run: list[str] = []  # filled as journeys start, so the log check knows PHI went through the server


@pytest.fixture(scope="module")
def clinician(live_server) -> tuple[str, str]:
    _, _, env = live_server
    subprocess.run([sys.executable, "-m", "medui", "users", "add", "--username", USERNAME, "--password", PASSWORD,
                    "--role", "clinician"], cwd=ROOT, env=env, check=True, capture_output=True)
    return USERNAME, PASSWORD


@pytest.fixture
def steps(browser_page, request) -> Iterator[Steps]:
    """Per-step screenshots under test-output/<test>/, removed when the test passes."""
    folder = ROOT / "test-output" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    browser_page.set_default_timeout(60_000)
    yield Steps(browser_page, folder)
    call = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if call is not None and call.passed:
        shutil.rmtree(folder, ignore_errors=True)


def start(page, live_server, clinician, steps, journey: str) -> None:
    """Sign in as the clinician (a fresh browser context per journey) and land on Home."""
    base, _, _ = live_server
    journeys_run.append(journey)
    sign_in(page, base, *clinician)
    page.get_by_text(f"Welcome, {clinician[0]}.").wait_for()
    steps("signed-in")


def analyse_note(page, steps, text: str, patient: str | None = None) -> None:
    open_page(page, "Notes")
    page.get_by_label("Paste a note").fill(text)
    if patient:
        box = page.get_by_label(re.compile("^Patient identifier"))
        box.fill(patient)  # moving here blurs the note, which commits it
        box.press("Enter")
    else:
        page.get_by_label("Paste a note").blur()
    page.get_by_role("button", name="Analyse", exact=True).click()
    page.get_by_role("heading", name="Entities").wait_for(timeout=MODEL_MS)
    steps("entities")


def test_note_entities_saved_and_found_on_records(live_server, clinician, browser_page, steps):
    page = browser_page
    start(page, live_server, clinician, steps, "notes")
    analyse_note(page, steps, NOTE, NOTE_PATIENT)
    page.locator("mark").filter(has_text="metformin").first.wait_for()
    page.locator("mark").filter(has_text="type 2 diabetes mellitus").first.wait_for()

    page.get_by_role("button", name="Save to the record").click()
    saved = page.get_by_text(re.compile(r"Saved as analysis \d+ for")).inner_text()
    assert NOTE_PATIENT in saved
    steps("saved")

    open_page(page, "Records")
    page.get_by_label(re.compile(r"^Find \(a problem")).fill("metformin")
    page.get_by_role("button", name="Search").click()
    page.get_by_text(re.compile(r"mentions in\s+1\s+notes")).wait_for()
    page.get_by_text(f"Patients: {NOTE_PATIENT}").wait_for()
    steps("found-on-records")


def dicom_series_zip(folder: Path) -> Path:
    """Two phantom CR images with findings as one series of a named patient, zipped with their labels.csv."""
    from medui.imaging.phantom import generate

    labels = generate(2, seed=11, out=folder, size=256, mix={"both": 1.0})
    archive = folder / "series.zip"
    first = None
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            if first is None:  # each phantom is its own study: make them one series of one patient
                first = ds
            ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, DICOM_PATIENT, "19480317"
            buffer = io.BytesIO()
            ds.save_as(buffer)
            zf.writestr(path.name, buffer.getvalue())
        zf.write(labels, labels.name)
    return archive


def test_dicom_series_viewer_overlay_trust_and_deidentified_export(live_server, clinician, browser_page, steps,
                                                                    tmp_path):
    page = browser_page
    archive = dicom_series_zip(tmp_path / "series")
    start(page, live_server, clinician, steps, "imaging")
    open_page(page, "Imaging")
    upload(page, "DICOM files, or a ZIP", archive)
    page.get_by_role("heading", name="Findings").wait_for(timeout=MODEL_MS)
    steps("viewer-and-findings")

    choose(page, "Window", "lung")
    page.get_by_text(re.compile(r"window C -600 / W 1500 \(lung\)")).wait_for()
    steps("lung-window")

    page.get_by_role("heading", name="Where the model looked").wait_for()
    choose(page, "Method", "Grad-CAM++")
    page.get_by_text("Side by side", exact=True).click()  # the overlay alone, full width
    page.get_by_text(re.compile(r"^Grad-CAM\+\+: (effusion|nodule)$")).wait_for(timeout=MODEL_MS)
    page.get_by_text(re.compile(r"Peak evidence .* logit units")).wait_for()
    steps("overlay")

    page.get_by_role("button", name="Run the trust checks").click()
    for check in ("Model randomisation", "Deletion / insertion", "Pointing game"):
        page.locator("strong", has_text=check).wait_for(timeout=MODEL_MS)
    steps("trust-panel")

    page.get_by_role("button", name="De-identified export").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download de-identified series (ZIP)").click()
    steps("exported")
    with zipfile.ZipFile(download.value.path()) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    assert len(members) == 2
    for name, data in members.items():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert str(ds.get("PatientName", "")) != PATIENT_NAME and ds.get("PatientID", "") != DICOM_PATIENT
        assert ds.get("PatientBirthDate", "") != "19480317"
        for secret in ("Quarles", "Henrietta", DICOM_PATIENT, "19480317"):
            assert secret.encode() not in data, f"{secret} left in {name}"
        assert ds.pixel_array.shape == (256, 256)


def test_ecg_upload_shows_rhythm_and_attribution(live_server, clinician, browser_page, steps):
    from pydicom.data import get_testdata_file

    page = browser_page
    start(page, live_server, clinician, steps, "ecg")
    open_page(page, "ECG")
    upload(page, "ECG recording", Path(get_testdata_file("waveform_ecg.dcm", download=False)))
    page.get_by_role("heading", name="Rhythm model").wait_for(timeout=MODEL_MS)
    page.get_by_text(re.compile(r"\(\d+%\) — model \S+ v\d+")).wait_for()
    page.get_by_role("radiogroup", name="Attribution method").wait_for()
    page.get_by_role("heading", name="Where the evidence sits").wait_for()
    assert page.get_by_role("switch", name="Show where the model looked").is_checked()
    steps("rhythm-and-attribution")

    box = page.get_by_label("Patient identifier", exact=True)
    box.fill(ECG_PATIENT)
    box.press("Enter")
    page.get_by_role("button", name="Save analysis").click()
    page.get_by_text(f"for {ECG_PATIENT}.").wait_for()
    steps("saved")


def test_cgm_export_shows_metrics_and_agp(live_server, clinician, browser_page, steps, tmp_path):
    from medui.signals.cgm.samples import generic_csv, synthetic_frame

    frame = synthetic_frame(n_subjects=1, days=14).assign(id=CGM_SUBJECT)
    export = tmp_path / "cgm-export.csv"
    export.write_bytes(generic_csv(frame))
    page = browser_page
    start(page, live_server, clinician, steps, "cgm")
    open_page(page, "Glucose")
    upload(page, "CGM export", export)
    page.get_by_text(re.compile(r"4032 readings over 14(\.0)? days")).wait_for(timeout=MODEL_MS)
    page.get_by_text("Ambulatory glucose profile (modal day)").wait_for()
    assert page.get_by_role("combobox", name="Subject").input_value() == CGM_SUBJECT
    metrics = page.locator('[data-testid="stDataFrame"]').first.locator("td")  # the grid's accessible table
    metrics.first.wait_for(state="attached")
    assert {"Time in range 70-180 (%)", "GMI (%)", "CV (%)"} <= set(metrics.all_text_contents())
    assert page.get_by_text("Not enough data for a reliable report").count() == 0
    steps("metrics-and-agp")

    box = page.get_by_label("Patient identifier (needed to save)")
    box.fill(CGM_PATIENT)
    box.press("Enter")
    page.get_by_role("button", name="Save analysis").click()
    page.get_by_text(f"for {CGM_PATIENT}.").wait_for()
    steps("saved")


def test_risk_form_scores_and_what_if(live_server, clinician, browser_page, steps):
    page = browser_page
    start(page, live_server, clinician, steps, "risk")
    open_page(page, "Risk")
    choose(page, "Sex", "male")
    for label, value in (("Age (years)", 62), ("Systolic blood pressure (mmHg)", 150),
                         ("Total cholesterol (mg/dL)", 230), ("HDL cholesterol (mg/dL)", 40),
                         ("Body-mass index (kg/m²)", 29)):
        set_number(page, label, value)
    page.get_by_text("Current smoker", exact=True).click()
    probability = page.locator('[data-testid="stMetric"]').filter(has_text="Calibrated 10-year CHD probability")
    probability.wait_for(timeout=MODEL_MS)
    steps("scores")

    page.get_by_text("What if?").click()
    what_if = page.locator('[data-testid="stExpander"]').filter(has_text="What if?")
    rows = what_if.locator('[data-testid="stDataFrame"] tr')  # the grid's accessible table: Score, Now, What if
    rows.nth(1).wait_for(state="attached")
    assert all(now == then for _, now, then in score_rows(rows))
    slider = what_if.get_by_role("slider", name="Systolic blood pressure (mmHg)")
    slider.focus()
    slider.press("Home")  # 90 mmHg, the lowest the slider offers
    changed = poll(lambda: [title for title, now, then in score_rows(rows) if now != then])
    assert changed, "no score changed when the systolic blood pressure did"
    steps("what-if")


def score_rows(rows) -> list[tuple[str, ...]]:
    return [tuple(row.locator("td").all_text_contents()) for row in rows.all()[1:]]


def poll(probe, seconds: float = 60):
    """`probe()` once it is truthy, else its last value after `seconds` (a Streamlit rerun has no event to await)."""
    deadline = time.monotonic() + seconds
    while not (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return value


def test_note_with_script_and_img_onerror_is_shown_as_text_never_run(live_server, clinician, browser_page, steps):
    page = browser_page
    start(page, live_server, clinician, steps, "xss")
    analyse_note(page, steps, XSS_NOTE)
    page.locator("mark").filter(has_text="amoxicillin").first.wait_for()
    highlighted = page.locator('div[style*="pre-wrap"]').filter(has=page.locator("mark")).text_content()
    for markup in ("<script>", "</script>", "<img src", "onerror", '__xss=1">'):
        assert markup in highlighted  # the note's markup is on screen as text (marks may split it)
    page.wait_for_timeout(1000)  # an <img src=x> fails to load at once; give a rendered one time to fire
    for frame in page.frames:  # st.html and components may render in iframes: look in every document
        assert frame.evaluate("() => typeof window.__xss") == "undefined"
        assert frame.evaluate("""() => [...document.querySelectorAll('script')]
                                     .filter(s => s.textContent.includes('__xss')).length""") == 0
        assert frame.evaluate("""() => [...document.querySelectorAll('*')].filter(e => [...e.attributes]
                                     .some(a => a.name.startsWith('on') && a.value.includes('__xss'))).length""") == 0
    steps("escaped")


def test_no_phi_or_note_text_in_logs(live_server):
    """Runs after the journeys: the terminal log and every log file under MEDUI_HOME name no patient, no note."""
    _, terminal, env = live_server
    if not journeys_run:
        pytest.skip("checks the logs the journeys of this module leave; none ran")
    home = Path(env["MEDUI_HOME"])
    logs = {terminal, *(p for p in home.rglob("*") if p.is_file() and re.search(r"(^|[._-])(log|out|err)([._-]|$)",
                                                                                 p.name.lower()))}
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [secret for secret in PHI if secret in text]
        assert not leaked, f"{path} contains {leaked} (after journeys {journeys_run})"
