"""Password hashing with argon2id (argon2-cffi) and the rules a new password must meet."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is not acceptable, or None when it is."""
    if len(password) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters."
    if username and username.lower() in password.lower():
        return "Password must not contain the username."
    if len(set(password)) < 4:
        return "Password is too repetitive."
    return None


def random_password() -> str:
    return secrets.token_urlsafe(15)


# Verified against on unknown usernames, so a wrong name takes as long as a wrong password.
DUMMY_HASH = hash_password(random_password())
