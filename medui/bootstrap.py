"""Start-up work shared by the app and the CLI."""

from __future__ import annotations

from medui.auth import ensure_initial_admin
from medui.store import engine


def bootstrap() -> str | None:
    """Migrate the database and create the first admin; returns that admin's password on the very first start."""
    engine()
    return ensure_initial_admin()


def first_admin_banner(password: str) -> str:
    """The one-time terminal message with the first admin's password (the Jenkins pattern)."""
    return (f"\n{'=' * 64}\nFirst start: created user 'admin' with password\n\n    {password}\n\n"
            f"It is shown this once only; you will be asked to change it at first sign-in.\n{'=' * 64}")
