"""Every page through Streamlit's AppTest: signed out is refused, clinicians see no admin pages, admins see all."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from medui import audit, auth

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Correct-Horse-9"
ALL_PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
ADMIN_PAGES = ["admin_audit.py", "admin_models.py", "admin_training.py", "admin_users.py"]
USER_PAGES = ["account.py", "ecg.py", "glucose.py", "home.py", "imaging.py", "notes.py", "records.py", "risk.py"]


@pytest.fixture(autouse=True)
def _routed(routed_like_a_live_server):
    """Every test here runs the app through its router, as a live server does."""


def app_as(username: str | None, script: str = "app.py") -> AppTest:
    at = AppTest.from_file(str(ROOT / script), default_timeout=30)
    if username:
        at.session_state["medui_token"] = auth.start_session(username)
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.title, *at.markdown, *at.error, *at.warning, *at.info, *at.success])


@pytest.fixture
def clinician():
    auth.create_user("dr.grey", PASSWORD, "clinician", actor="test")
    return "dr.grey"


@pytest.fixture
def admin():
    auth.create_user("boss", PASSWORD, "admin", actor="test")
    return "boss"


def test_every_page_is_covered_by_these_lists():
    assert sorted(ADMIN_PAGES + USER_PAGES + ["sign_in.py"]) == ALL_PAGES


@pytest.mark.parametrize("page", ADMIN_PAGES + USER_PAGES)
def test_a_signed_out_visitor_is_refused_by_every_page(page):
    at = app_as(None, f"pages/{page}")
    assert not at.exception
    assert [e.value for e in at.error] == ["Please sign in to use MedUI."]
    assert not at.dataframe and not at.button


def test_signed_out_app_shows_only_the_sign_in_form():
    at = app_as(None)
    assert at.title[0].value == "MedUI"
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_signing_in_through_the_form_opens_home(clinician):
    at = app_as(None)
    at.text_input[0].input("dr.grey")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert "Welcome, **dr.grey**." in texts(at)


def test_a_wrong_password_is_a_message_not_a_page(clinician):
    at = app_as(None)
    at.text_input[0].input("dr.grey")
    at.text_input[1].input("nope-nope-nope")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong username or password."]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_a_clinician_is_refused_by_admin_pages_server_side(clinician, page):
    at = app_as(clinician, f"pages/{page}")
    assert [e.value for e in at.error] == ["This page is for administrators."]
    assert not at.dataframe
    assert audit.events(action="page_refused")[0]["actor"] == clinician


def test_admin_pages_are_not_registered_for_a_clinician(clinician):
    at = app_as(clinician)
    assert not at.exception
    with pytest.raises(Exception):
        at.switch_page("pages/admin_users.py").run()


@pytest.mark.parametrize("page", ["pages/" + p for p in ADMIN_PAGES + USER_PAGES])
def test_admin_pages_render_without_exceptions(admin, page):
    at = app_as(admin)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error


def test_one_time_password_forces_the_change_page_only():
    password = auth.ensure_initial_admin()
    at = app_as(None)
    at.text_input[0].input("admin")
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert at.title[0].value == "My account"
    assert "one-time password" in texts(at)
    home = app_as("admin", "pages/home.py")
    assert "Please change your password" in texts(home)
    at.text_input[0].input(password)
    at.text_input[1].input("Brand-new-pass-7")
    at.text_input[2].input("Brand-new-pass-7")
    at.button[0].click().run()
    assert "Welcome, **admin**." in texts(at)


def test_admin_adds_a_clinician_from_the_users_page(admin):
    at = app_as(admin)
    at.switch_page("pages/admin_users.py").run()
    form_inputs = [t for t in at.text_input]
    form_inputs[0].input("dr.new")
    form_inputs[1].input("Welcome-aboard-1")
    at.button[0].click().run()
    assert not at.exception
    assert "Added clinician 'dr.new'." in texts(at)
    assert auth.get_user("dr.new").must_change_password
    assert audit.events(action="user_add")[0]["actor"] == admin


def test_admin_sees_a_broken_audit_chain(admin):
    from sqlalchemy import update

    from medui.store import session_scope
    from medui.store.models import AuditEvent

    with session_scope() as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == 1).values(actor="mallory"))
    at = app_as(admin)
    at.switch_page("pages/admin_audit.py").run()
    assert "row 1 was edited" in " ".join(e.value for e in at.error)


def test_sign_out_ends_the_session(admin):
    at = app_as(admin)
    token = at.session_state["medui_token"]
    at.sidebar.button[0].click().run()
    assert auth.resume_session(token) is None
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_admin_promotes_and_rolls_back_from_the_models_page(admin, tmp_path, shipped_models):
    import torch
    from safetensors.torch import save_file

    from medui import registry

    for value in (1.0, 2.0):
        save_file({"w": torch.full((2,), value)}, str(tmp_path / "w.safetensors"))
        registry.register_version("demo", "ecg", {"model.safetensors": tmp_path / "w.safetensors"},
                                  base_model="none", method="full", labels=[], metrics={}, provenance={},
                                  actor="test")
    at = app_as(admin)
    at.switch_page("pages/admin_models.py").run()
    version_box = next(s for s in at.selectbox if s.label == "Version")
    version_box.select("1").run()
    promote = next(b for b in at.button if b.label == "Promote to production")
    assert promote.disabled  # nothing happens without the confirmation
    next(c for c in at.checkbox if c.key == "confirm_promote").check().run()
    next(b for b in at.button if b.label == "Promote to production").click().run()
    assert "Promoted: demo v1 is now in production." in texts(at)
    assert registry.production_versions() == {"demo": "1"}

    next(s for s in at.selectbox if s.label == "Version").select("2").run()
    next(c for c in at.checkbox if c.key == "confirm_promote").check().run()
    next(b for b in at.button if b.label == "Promote to production").click().run()
    assert registry.production_versions() == {"demo": "2"}
    next(c for c in at.checkbox if c.key == "confirm_rollback").check().run()
    next(b for b in at.button if b.label == "Roll back").click().run()
    assert not at.exception
    assert "Rolled back: demo v1 is now in production." in texts(at)
    assert [e["action"] for e in audit.events(actor=admin) if e["action"].startswith("model_")] == [
        "model_rollback", "model_promote", "model_promote"]


def test_tampered_model_cannot_be_promoted_from_the_page(admin, tmp_path, shipped_models):
    import torch
    from safetensors.torch import save_file

    from medui import registry

    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    mv = registry.register_version("demo", "ecg", {"model.safetensors": tmp_path / "w.safetensors"},
                                   base_model="none", method="full", labels=[], metrics={}, provenance={},
                                   actor="test")
    weights = mv.directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    at = app_as(admin)
    at.switch_page("pages/admin_models.py").run()
    next(c for c in at.checkbox if c.key == "confirm_promote").check().run()
    next(b for b in at.button if b.label == "Promote to production").click().run()
    assert any("model.safetensors" in e.value for e in at.error)
    assert registry.production_versions() == {}


def test_admin_resets_a_password_and_disables_an_account(admin, clinician):
    at = app_as(admin)
    at.switch_page("pages/admin_users.py").run()
    next(s for s in at.selectbox if s.label == "Account").select(clinician).run()
    next(c for c in at.checkbox if c.key == "confirm_reset").check().run()
    next(b for b in at.button if b.label == "Reset password").click().run()
    notice = at.success[0].value
    temporary = notice.split("`")[1]
    assert auth.authenticate(clinician, temporary).must_change_password
    next(c for c in at.checkbox if c.key == "confirm_active").check().run()
    next(b for b in at.button if b.label == "Disable").click().run()
    assert not auth.get_user(clinician).active


SSO_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
               "client_id": "medui", "client_secret": "s", "server_metadata_url": "https://idp.example/.well-known"}


def sso_app(email: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets["auth"] = SSO_SECRETS
    at.user = {"is_logged_in": True, "email": email}
    return at.run()


def test_single_sign_on_maps_to_the_local_account_and_role():
    auth.create_user("grey@hospital.org", PASSWORD, "admin", actor="test")
    at = sso_app("Grey@hospital.org")
    assert not at.exception
    assert "Welcome, **grey@hospital.org**." in texts(at)
    assert audit.events(action="sign_in")[0]["detail"] == {"method": "sso"}


def test_single_sign_on_without_a_local_account_is_refused():
    at = sso_app("stranger@hospital.org")
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "No active MedUI account for stranger@hospital.org" in " ".join(e.value for e in at.error)
    assert any(b.label == "Sign in with single sign-on" for b in at.button)
    assert audit.events(action="sign_in")[0]["outcome"] == "failure"
