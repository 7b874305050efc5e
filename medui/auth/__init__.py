"""Local accounts: roles, argon2 passwords, lockout after repeated failures, and the first-start admin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medui import audit
from medui.auth.passwords import DUMMY_HASH, hash_password, password_problem, random_password, verify_password
from medui.config import settings
from medui.store import session_scope
from medui.store.models import User

ROLES = ("clinician", "admin")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,62}$")
BAD_CREDENTIALS = "Wrong username or password."


class AuthError(Exception):
    """A refusal whose message can be shown to the user as it is."""


class RoleRefused(AuthError, PermissionError):
    """A signed-in account asked for an action its role does not allow."""


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    active: bool
    must_change_password: bool
    locked: bool
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; everything MedUI stores is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def _info(user: User) -> UserInfo:
    locked_until = _aware(user.locked_until)
    return UserInfo(
        username=user.username, role=user.role, active=user.active,
        must_change_password=user.must_change_password,
        locked=bool(locked_until and locked_until > datetime.now(timezone.utc)),
        created_at=_aware(user.created_at).isoformat(timespec="seconds"),
    )


def _get(session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise AuthError(f"No user named {username!r}.")
    return user


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AuthError(f"Role must be one of: {', '.join(ROLES)}.")


def require_role(actor: str, role: str, action: str) -> None:
    """Refuse (RoleRefused, audited) unless `actor` may do an action reserved to `role`.

    An actor that is an account must be active and hold the role: the web app always acts as the signed-in
    account, so a clinician's session cannot reach an admin action even if a page forgot its own check. An actor
    that is no account (`cli:<os user>`, `system`, a job process) is the server's operator, who already holds
    the database and MEDUI_HOME; ':' cannot appear in a username, so `cli:` actors never collide with accounts.
    """
    with session_scope() as session:
        user = session.scalars(select(User).where(User.username == actor.strip().lower())).first()
        allowed = user is None or (user.active and user.role == role)
    if not allowed:
        audit.record(actor, action, "refused", reason=f"not an active {role}")
        raise RoleRefused(f"Only an {role} may do this ({action}); {actor!r} is not one.")


def create_user(username: str, password: str, role: str, actor: str, must_change_password: bool = False) -> UserInfo:
    require_role(actor, "admin", "user_add")
    username = username.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise AuthError("Username must be 2-63 characters: lower-case letters, digits, '.', '_', '@' or '-'.")
    _check_role(role)
    problem = password_problem(password, username)
    if problem:
        raise AuthError(problem)
    try:
        with session_scope() as session:
            user = User(username=username, password_hash=hash_password(password), role=role,
                        must_change_password=must_change_password)
            session.add(user)
            session.flush()
            info = _info(user)
            audit.append(session, actor, "user_add", target=username, role=role)  # commits with the account
    except IntegrityError:
        raise AuthError(f"A user named {username!r} already exists.") from None
    return info


def list_users() -> list[UserInfo]:
    with session_scope() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.username))]


def get_user(username: str) -> UserInfo:
    with session_scope() as session:
        return _info(_get(session, username))


def _ensure_another_admin(session, user: User) -> None:
    if user.role != "admin":
        return
    # Lock the active admins' rows: on PostgreSQL two admins demoting each other at once would otherwise both see
    # the other still active and leave none (SQLite's BEGIN IMMEDIATE already serialises the two).
    admins = session.scalars(select(User.id).where(User.role == "admin", User.active.is_(True))
                             .with_for_update()).all()
    others = [a for a in admins if a != user.id]
    if not others:
        raise AuthError("This is the last active admin; add another admin first.")


def set_active(username: str, active: bool, actor: str) -> None:
    require_role(actor, "admin", "user_enable" if active else "user_disable")
    with session_scope() as session:
        user = _get(session, username)
        if not active:
            _ensure_another_admin(session, user)
        user.active = active
        if active:
            user.failed_signins, user.locked_until = 0, None
        audit.append(session, actor, "user_enable" if active else "user_disable", target=username)
    if not active:
        end_all_sessions(username)


def set_role(username: str, role: str, actor: str) -> None:
    require_role(actor, "admin", "role_change")
    _check_role(role)
    with session_scope() as session:
        user = _get(session, username)
        if role != "admin":
            _ensure_another_admin(session, user)
        user.role = role
        audit.append(session, actor, "role_change", target=username, role=role)


def reset_password(username: str, actor: str) -> str:
    """Give the user a one-time random password that must be changed at the next sign-in."""
    require_role(actor, "admin", "password_reset")
    temporary = random_password()
    with session_scope() as session:
        user = _get(session, username)
        user.password_hash = hash_password(temporary)
        user.must_change_password = True
        user.failed_signins, user.locked_until = 0, None
        audit.append(session, actor, "password_reset", target=username)
    end_all_sessions(username)
    return temporary


def change_password(username: str, current: str, new: str) -> None:
    with session_scope() as session:
        user = _get(session, username)
        if not verify_password(user.password_hash, current):
            outcome_problem = "Current password is wrong."
        elif new == current:
            outcome_problem = "The new password must differ from the current one."
        else:
            outcome_problem = password_problem(new, username)
        if outcome_problem is None:
            user.password_hash = hash_password(new)
            user.must_change_password = False
    audit.record(username, "password_change", "failure" if outcome_problem else "success")
    if outcome_problem:
        raise AuthError(outcome_problem)


def authenticate(username: str, password: str) -> UserInfo:
    """Check credentials, counting failures; raises AuthError with a message fit for the sign-in form."""
    username = username.strip().lower()
    cfg = settings()
    # argon2 is slow on purpose, so the hash is checked outside any transaction: on SQLite every transaction holds
    # the write lock (BEGIN IMMEDIATE), and 20 parallel sign-ins queued behind each other's hashing until some
    # failed with "database is locked" (bench/load.py). An unknown name costs the same hash as a wrong password.
    with session_scope() as session:
        stored = session.scalars(select(User.password_hash).where(User.username == username)).first()
    matches = verify_password(stored or DUMMY_HASH, password) and stored is not None
    now = datetime.now(timezone.utc)
    refusal: str | None = None
    with session_scope() as session:
        # The row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises) keeps parallel wrong guesses
        # from each reading the same failure count, which would never reach the lockout.
        user = session.scalars(select(User).where(User.username == username).with_for_update()).first()
        if user is None:
            refusal = BAD_CREDENTIALS
        elif _aware(user.locked_until) and _aware(user.locked_until) > now:
            refusal = (f"Too many failed sign-ins: this account is locked until "
                       f"{_aware(user.locked_until):%H:%M} UTC. An admin can unlock it.")
        elif not matches or user.password_hash != stored:  # a hash changed meanwhile was not the one checked
            user.failed_signins += 1
            refusal = BAD_CREDENTIALS
            if user.failed_signins >= cfg.max_failed_signins:
                user.locked_until = now + timedelta(minutes=cfg.lockout_minutes)
                user.failed_signins = 0
                refusal = (f"Too many failed sign-ins: this account is locked for {cfg.lockout_minutes} minutes.")
        elif not user.active:
            refusal = "This account is disabled. Ask an admin."
        else:
            user.failed_signins, user.locked_until = 0, None
            info = _info(user)
    audit.record(username or "(blank)", "sign_in", "failure" if refusal else "success",
                 **({"reason": refusal} if refusal else {}))
    if refusal:
        raise AuthError(refusal)
    return info


def user_for_sso(identity: str) -> UserInfo:
    """The local account matching a single-sign-on identity (its e-mail); roles always come from MedUI itself."""
    identity = identity.strip().lower()
    with session_scope() as session:
        user = session.scalars(select(User).where(User.username == identity)).first()
        refusal = None if user and user.active else f"No active MedUI account for {identity or 'this sign-in'}; ask an admin."
        info = _info(user) if refusal is None else None
    if refusal:
        raise AuthError(refusal)
    return info


def ensure_initial_admin() -> str | None:
    """On a first start with no users, create `admin` with a random password and return it (once, ever)."""
    with session_scope() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    password = random_password()
    try:
        create_user("admin", password, "admin", actor="system", must_change_password=True)
    except AuthError:  # another process created it between our check and insert
        return None
    return password


from medui.auth.sessions import end_all_sessions, end_session, resume_session, start_session  # noqa: E402

__all__ = [
    "ROLES", "AuthError", "RoleRefused", "UserInfo", "authenticate", "change_password", "create_user",
    "end_all_sessions", "end_session", "ensure_initial_admin", "get_user", "list_users", "require_role",
    "reset_password", "resume_session", "set_active", "set_role", "start_session", "user_for_sso",
]
