"""Where MedUI keeps its data and the settings an operator may change through the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = REPO_ROOT / "models"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Operator settings, read from the environment each time `settings()` is called."""

    home: Path
    database_url: str
    idle_timeout_minutes: int
    max_failed_signins: int
    lockout_minutes: int

    @property
    def trained_models_dir(self) -> Path:
        return self.home / "models"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"


def settings() -> Settings:
    home = Path(os.environ.get("MEDUI_HOME") or REPO_ROOT / "data").resolve()
    home.mkdir(parents=True, exist_ok=True)
    url = os.environ.get("MEDUI_DATABASE_URL") or f"sqlite:///{home / 'medui.db'}"
    return Settings(
        home=home,
        database_url=url,
        idle_timeout_minutes=_int_env("MEDUI_IDLE_TIMEOUT_MINUTES", 30),
        max_failed_signins=_int_env("MEDUI_MAX_FAILED_SIGNINS", 5),
        lockout_minutes=_int_env("MEDUI_LOCKOUT_MINUTES", 15),
    )


def secret_key() -> bytes:
    """The key that signs session cookies: MEDUI_SECRET_KEY, else a random key kept (mode 0600) under MEDUI_HOME."""
    from_env = os.environ.get("MEDUI_SECRET_KEY")
    if from_env:
        return from_env.encode()
    path = settings().home / "secret.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()
