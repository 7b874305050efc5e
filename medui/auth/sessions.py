"""Server-side sign-in sessions. The browser holds only a signed session id; idle expiry and sign-out live here."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update

from medui import audit
from medui.auth import UserInfo, _aware, _info
from medui.config import secret_key, settings
from medui.store import session_scope
from medui.store.models import User, UserSession

# A session never outlives a working day, however active.
ABSOLUTE_LIFETIME = timedelta(hours=12)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(), salt="medui-session")


def start_session(username: str) -> str:
    """Open a session for a user who has just authenticated; returns the signed token for the cookie."""
    session_id = secrets.token_urlsafe(32)
    with session_scope() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        session.add(UserSession(id=session_id, user_id=user.id))
    return _serializer().dumps(session_id)


def _session_id(token: str) -> str | None:
    try:
        return _serializer().loads(token, max_age=int(ABSOLUTE_LIFETIME.total_seconds()))
    except BadSignature:
        return None


def resume_session(token: str | None) -> UserInfo | None:
    """The user behind a token if the session is live, touching it; None when expired, ended or forged."""
    session_id = _session_id(token) if token else None
    if session_id is None:
        return None
    now = datetime.now(timezone.utc)
    idle_limit = timedelta(minutes=settings().idle_timeout_minutes)
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        if row is None or row.ended_at is not None:
            return None
        user = session.get(User, row.user_id)
        if now - _aware(row.last_seen_at) > idle_limit or not user.active:
            row.ended_at = now
            expired_user = user.username
        else:
            row.last_seen_at = now
            return _info(user)
    audit.record(expired_user, "session_expired")
    return None


def end_session(token: str | None) -> None:
    session_id = _session_id(token) if token else None
    if session_id is None:
        return
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        if row is not None and row.ended_at is None:
            row.ended_at = datetime.now(timezone.utc)


def end_all_sessions(username: str) -> None:
    """Sign a user out everywhere: every browser's next request finds its session ended."""
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        session.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                        .values(ended_at=datetime.now(timezone.utc)))
