from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from medui import audit, auth
from medui.auth import AuthError
from medui.store import session_scope
from medui.store.models import User, UserSession

GOOD = "Correct-Horse-9"


@pytest.fixture
def clinician():
    return auth.create_user("dr.grey", GOOD, "clinician", actor="admin")


def test_passwords_are_stored_as_argon2_hashes(clinician):
    with session_scope() as session:
        stored = session.query(User).filter_by(username="dr.grey").one().password_hash
    assert stored.startswith("$argon2id$") and GOOD not in stored


def test_sign_in_succeeds_and_is_audited(clinician):
    assert auth.authenticate("Dr.Grey ", GOOD).role == "clinician"
    assert audit.events(action="sign_in")[0]["outcome"] == "success"


@pytest.mark.parametrize("username,password", [("dr.grey", "wrong-password"), ("nobody", GOOD)])
def test_wrong_credentials_give_one_message(clinician, username, password):
    with pytest.raises(AuthError, match="Wrong username or password"):
        auth.authenticate(username, password)
    assert audit.events(action="sign_in")[0]["outcome"] == "failure"


def test_repeated_failures_lock_the_account(clinician, monkeypatch):
    monkeypatch.setenv("MEDUI_MAX_FAILED_SIGNINS", "3")
    for _ in range(2):
        with pytest.raises(AuthError, match="Wrong"):
            auth.authenticate("dr.grey", "bad-password")
    with pytest.raises(AuthError, match="locked"):
        auth.authenticate("dr.grey", "bad-password")
    with pytest.raises(AuthError, match="locked"):  # even the right password waits
        auth.authenticate("dr.grey", GOOD)
    assert auth.get_user("dr.grey").locked
    auth.set_active("dr.grey", True, actor="admin")  # an admin unlocks
    assert auth.authenticate("dr.grey", GOOD).username == "dr.grey"


def test_disabled_accounts_cannot_sign_in(clinician):
    auth.set_active("dr.grey", False, actor="admin")
    with pytest.raises(AuthError, match="disabled"):
        auth.authenticate("dr.grey", GOOD)


@pytest.mark.parametrize("username,password,message", [
    ("dr.grey", GOOD, "already exists"),
    ("Bad Name!", GOOD, "Username must be"),
    ("dr.new", "short", "at least 10"),
    ("dr.new", "xxdr.newxx-9", "must not contain the username"),
])
def test_bad_new_accounts_are_refused(clinician, username, password, message):
    with pytest.raises(AuthError, match=message):
        auth.create_user(username, password, "clinician", actor="admin")


def test_unknown_role_is_refused():
    with pytest.raises(AuthError, match="Role must be one of"):
        auth.create_user("dr.x", GOOD, "superuser", actor="admin")


def test_the_last_admin_cannot_be_disabled_or_demoted():
    auth.create_user("boss", GOOD, "admin", actor="system")
    with pytest.raises(AuthError, match="last active admin"):
        auth.set_active("boss", False, actor="boss")
    with pytest.raises(AuthError, match="last active admin"):
        auth.set_role("boss", "clinician", actor="boss")


def test_first_start_creates_admin_once_with_forced_change():
    password = auth.ensure_initial_admin()
    assert password and len(password) >= 16
    assert auth.ensure_initial_admin() is None
    admin = auth.authenticate("admin", password)
    assert admin.is_admin and admin.must_change_password
    auth.change_password("admin", password, "A-new-passphrase-1")
    assert not auth.get_user("admin").must_change_password


def test_change_password_checks_the_current_one(clinician):
    with pytest.raises(AuthError, match="Current password is wrong"):
        auth.change_password("dr.grey", "not-it", "Another-pass-22")
    with pytest.raises(AuthError, match="must differ"):
        auth.change_password("dr.grey", GOOD, GOOD)


def test_reset_password_forces_a_change_and_ends_sessions(clinician):
    token = auth.start_session("dr.grey")
    temporary = auth.reset_password("dr.grey", actor="admin")
    assert auth.resume_session(token) is None
    assert auth.authenticate("dr.grey", temporary).must_change_password


def test_sessions_resume_until_idle_timeout(clinician, monkeypatch):
    token = auth.start_session("dr.grey")
    assert auth.resume_session(token).username == "dr.grey"
    with session_scope() as session:
        session.execute(update(UserSession).values(last_seen_at=datetime.now(timezone.utc) - timedelta(minutes=31)))
    assert auth.resume_session(token) is None
    assert audit.events(action="session_expired")[0]["actor"] == "dr.grey"


def test_idle_timeout_is_configurable(clinician, monkeypatch):
    monkeypatch.setenv("MEDUI_IDLE_TIMEOUT_MINUTES", "5")
    token = auth.start_session("dr.grey")
    with session_scope() as session:
        session.execute(update(UserSession).values(last_seen_at=datetime.now(timezone.utc) - timedelta(minutes=6)))
    assert auth.resume_session(token) is None


def test_forged_or_missing_tokens_resume_nothing(clinician):
    token = auth.start_session("dr.grey")
    assert auth.resume_session(token[:-2] + "xx") is None
    assert auth.resume_session("") is None
    assert auth.resume_session(None) is None


def test_sign_out_ends_every_session_of_the_user(clinician):
    laptop, ward_pc = auth.start_session("dr.grey"), auth.start_session("dr.grey")
    auth.end_all_sessions("dr.grey")
    assert auth.resume_session(laptop) is None and auth.resume_session(ward_pc) is None


def test_disabling_a_user_ends_their_sessions(clinician):
    token = auth.start_session("dr.grey")
    auth.set_active("dr.grey", False, actor="admin")
    assert auth.resume_session(token) is None


def test_sso_identity_maps_to_an_existing_active_account():
    auth.create_user("grey@hospital.org", GOOD, "clinician", actor="admin")
    assert auth.user_for_sso("Grey@Hospital.org").role == "clinician"
    with pytest.raises(AuthError, match="No active MedUI account"):
        auth.user_for_sso("stranger@hospital.org")
