"""Every test runs against its own temporary MEDUI_HOME and database.

With MEDUI_TEST_DATABASE_URL set (a PostgreSQL database that tests/pg_cluster.py made; .ci/run's second pass) that
database is migrated once and used as a template: each test, and each test module for the servers it starts, gets
its own copy through MEDUI_DATABASE_URL, so subprocesses (CLI, streamlit, training workers) use PostgreSQL too.
"""

from __future__ import annotations

import itertools
import os
import signal
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_process
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from medui import auth
from medui.cli import main
from medui.store import engine, reset_engines

POSTGRES_TEMPLATE_URL = os.environ.get("MEDUI_TEST_DATABASE_URL")
_copies = itertools.count()


@pytest.fixture(scope="session")
def _postgres_server():
    """The PostgreSQL pass: migrate the template once; yields a connection to the server for CREATE/DROP DATABASE."""
    if not POSTGRES_TEMPLATE_URL:
        yield None
        return
    engine(POSTGRES_TEMPLATE_URL)
    reset_engines()  # CREATE DATABASE ... TEMPLATE needs the template idle
    server = create_engine(make_url(POSTGRES_TEMPLATE_URL).set(database="postgres"), poolclass=NullPool,
                           isolation_level="AUTOCOMMIT")
    yield server
    server.dispose()


@contextmanager
def _database_copy(server):
    """A fresh copy of the migrated template (FILE_COPY: ~80 ms with create and drop, as fast as truncating every
    table and re-seeding); dropped afterwards even if a leftover process still holds a connection."""
    template = make_url(POSTGRES_TEMPLATE_URL)
    name = f"{template.database}_{os.getpid()}_{next(_copies)}"
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}" STRATEGY FILE_COPY')
    try:
        yield template.set(database=name).render_as_string(hide_password=False)
    finally:
        reset_engines()
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", autouse=True)
def _module_database(_postgres_server):
    """On PostgreSQL, servers a module starts (live_server copies os.environ) get the module's own database."""
    if _postgres_server is None:
        yield
        return
    with _database_copy(_postgres_server) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDUI_DATABASE_URL", url)
        yield


@pytest.fixture(autouse=True)
def medui_home(tmp_path, monkeypatch, _postgres_server):
    home = tmp_path / "medui_home"
    monkeypatch.setenv("MEDUI_HOME", str(home))
    monkeypatch.delenv("MEDUI_DEVICE", raising=False)
    with ExitStack() as stack:
        if _postgres_server is None:
            monkeypatch.delenv("MEDUI_DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("MEDUI_DATABASE_URL", stack.enter_context(_database_copy(_postgres_server)))
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
    env = {**os.environ, "MEDUI_HOME": str(home)}
    with streamlit_process(env, log) as (base, _process):
        yield base, log, env


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
