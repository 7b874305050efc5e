import json

import pytest
from sqlalchemy import update

from medui import auth
from medui.cli import main
from medui.store import session_scope
from medui.store.models import AuditEvent


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("init", "users", "models", "audit"):
        assert command in out


def test_init_prints_the_admin_password_once(cli):
    code, out, _ = cli("init", "--json")
    first = json.loads(out)
    assert code == 0 and first["admin_created"]
    assert auth.authenticate("admin", first["admin_password"]).must_change_password
    code, out, _ = cli("init", "--json")
    assert json.loads(out) == {"home": first["home"], "admin_created": False}


def test_init_can_prepare_the_icd_index_so_the_first_note_does_not_wait(cli, medui_home):
    code, out, _ = cli("init", "--prepare-vocabularies", "--json")
    assert code == 0 and json.loads(out)["vocabularies"]["ICD-10-CM"]
    assert list((medui_home / "cache").rglob("*.npz")), "the index is cached under MEDUI_HOME"


def test_users_add_list_disable_enable(cli):
    code, out, _ = cli("users", "add", "--username", "dr.a", "--password", "Long-enough-1",
                       "--role", "clinician", "--json")
    assert code == 0 and json.loads(out)["role"] == "clinician"
    code, out, _ = cli("users", "list", "--json")
    assert [(u["username"], u["active"]) for u in json.loads(out)] == [("dr.a", True)]
    assert cli("users", "disable", "--username", "dr.a")[0] == 0
    assert not auth.get_user("dr.a").active
    assert cli("users", "enable", "--username", "dr.a")[0] == 0
    assert auth.authenticate("dr.a", "Long-enough-1").active


def test_reset_password_prints_a_one_time_password(cli):
    auth.create_user("dr.a", "Long-enough-1", "clinician", actor="test")
    code, out, _ = cli("users", "reset-password", "--username", "dr.a", "--json")
    assert auth.authenticate("dr.a", json.loads(out)["temporary_password"]).must_change_password


@pytest.mark.parametrize("argv,message", [
    (["users", "add", "--username", "dr.a", "--password", "short", "--role", "admin"], "at least 10"),
    (["users", "disable", "--username", "ghost"], "No user named 'ghost'"),
    (["audit", "list", "--limit", "0"], "--limit must be positive"),
])
def test_bad_input_is_one_line_and_exit_1(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_audit_verify_exit_code_tells_a_tampered_chain(cli):
    auth.create_user("dr.a", "Long-enough-1", "clinician", actor="test")
    code, out, _ = cli("audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    with session_scope() as session:
        session.execute(update(AuditEvent).values(outcome="failure"))
    code, out, _ = cli("audit", "verify")
    assert code == 2 and "row 1 was edited" in out


def test_audit_list_filters(cli):
    auth.create_user("dr.a", "Long-enough-1", "clinician", actor="test")
    with pytest.raises(auth.AuthError):
        auth.authenticate("dr.a", "wrong-password")
    code, out, _ = cli("audit", "list", "--outcome", "failure", "--json")
    assert [(e["actor"], e["action"]) for e in json.loads(out)] == [("dr.a", "sign_in")]
