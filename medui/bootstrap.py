"""Start-up work shared by the app and the CLI."""

from __future__ import annotations

import logging
import os
import sys

from medui.auth import ensure_initial_admin
from medui.store import engine

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging() -> None:
    """MEDUI_LOG_LEVEL (e.g. INFO) sends MedUI's own log lines, such as each model weight file read from disk,
    to stderr; unset, they stay silent. Streamlit configures only its own loggers, hence a handler here."""
    level = (os.environ.get("MEDUI_LOG_LEVEL") or "").strip().upper()
    if not level:
        return
    if level not in LOG_LEVELS:
        print(f"MEDUI_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}: ignored", file=sys.stderr)
        return
    logger = logging.getLogger("medui")
    logger.setLevel(level)
    if not any(getattr(h, "medui_stderr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.medui_stderr = True  # one handler however often bootstrap runs in this process
        logger.addHandler(handler)


def bootstrap() -> str | None:
    """Migrate the database and create the first admin; returns that admin's password on the very first start."""
    configure_logging()
    engine()
    password = ensure_initial_admin()
    # Jobs whose process died with the server (or while it was down) must not stay "running": fail them with
    # their log's tail, or record the result of those that finished meanwhile; live ones are left running.
    from medui.training import runner

    runner.reconcile()
    return password


def first_admin_banner(password: str) -> str:
    """The one-time terminal message with the first admin's password (the Jenkins pattern)."""
    return (f"\n{'=' * 64}\nFirst start: created user 'admin' with password\n\n    {password}\n\n"
            f"It is shown this once only; you will be asked to change it at first sign-in.\n{'=' * 64}")
