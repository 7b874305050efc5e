"""Every test runs against its own temporary MEDUI_HOME and database."""

from __future__ import annotations

import pytest

from medui.store import reset_engines


@pytest.fixture(autouse=True)
def medui_home(tmp_path, monkeypatch):
    home = tmp_path / "medui_home"
    monkeypatch.setenv("MEDUI_HOME", str(home))
    monkeypatch.delenv("MEDUI_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDUI_DEVICE", raising=False)
    reset_engines()
    yield home
    reset_engines()
