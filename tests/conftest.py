"""Every test runs against its own temporary MEDUI_HOME and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from medui import auth
from medui.cli import main
from medui.store import reset_engines


@pytest.fixture(autouse=True)
def medui_home(tmp_path, monkeypatch):
    home = tmp_path / "medui_home"
    monkeypatch.setenv("MEDUI_HOME", str(home))
    monkeypatch.delenv("MEDUI_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDUI_DEVICE", raising=False)
    reset_engines()
    yield home
    reset_engines()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test (browser screenshots)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def shipped_models(tmp_path, monkeypatch):
    """A temporary shipped-models root, so no test reads or writes the repository's models/."""
    root = tmp_path / "shipped"
    root.mkdir()
    monkeypatch.setattr("medui.config.SHIPPED_MODELS_DIR", root)
    return root


@pytest.fixture
def cli(capsys):
    """Run `python -m medui ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def routed_like_a_live_server(monkeypatch):
    """AppTest forgets before every run that app.py has called st.navigation, so Streamlit would serve files in
    pages/ directly, bypassing the router; a live server remembers it (see medui.ui.session.ensure_routed,
    exercised by the browser test). Keep each run going through app.py as on a live server."""
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def clinician_page():
    """Open one file of pages/ directly (as after routing) for a signed-in clinician: clinician_page("risk.py")."""
    auth.create_user("dr.grey", "Correct-Horse-9", "clinician", actor="test")

    def open_page(name: str, timeout: float = 60) -> AppTest:
        PagesManager.uses_pages_directory = False  # the page file is the main script here
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / name), default_timeout=timeout)
        at.session_state["medui_token"] = auth.start_session("dr.grey")
        return at

    return open_page


@pytest.fixture
def routed_clinician_page(routed_like_a_live_server):
    """A page reached through app.py for a signed-in clinician, so links to other pages resolve:
    routed_clinician_page("pages/ecg.py")."""
    auth.create_user("dr.grey", "Correct-Horse-9", "clinician", actor="test")

    def open_page(path: str, timeout: float = 120) -> AppTest:
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout)
        at.session_state["medui_token"] = auth.start_session("dr.grey")
        return at.run().switch_page(path).run()

    return open_page


@pytest.fixture
def load_sample():
    """Click a page's one-click sample by the start of its title: load_sample(at, "Phantom")."""

    def load(at: AppTest, title_start: str) -> AppTest:
        at.run()
        next(b for b in at.button if b.label.startswith(f"Load sample: {title_start}")).click().run()
        return at

    return load


@pytest.fixture
def one_job_slot(monkeypatch):
    """One training slot, and no test leaves a job process (or its process group) behind."""
    from medui.training import runner

    monkeypatch.setenv("MEDUI_MAX_JOBS", "1")
    runner._children.clear()
    yield
    for child in list(runner._children.values()):
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait(timeout=10)
    runner._children.clear()


# Real-browser fixtures (helpers in tests/browser_harness.py).
@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A fresh MedUI on a free port, with its own MEDUI_HOME; yields (base url, terminal log path, env)."""
    home = tmp_path_factory.mktemp("browser_home")
    log = home / "terminal.log"
    port = free_port()
    env = {**os.environ, "MEDUI_HOME": str(home)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("streamlit did not start:\n" + log.read_text()) from None
                time.sleep(0.5)
        yield base, log, env
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browser_page(chromium, request):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    call = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if call is None or call.failed:
        out = ROOT / "test-output" / request.node.name
        out.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out / "failure.png"), full_page=True)
    context.close()
