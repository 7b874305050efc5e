"""Every test runs against its own temporary MEDUI_HOME and database."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
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
