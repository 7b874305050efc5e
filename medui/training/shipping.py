"""What the `train_default` scripts share when they produce a model shipped in models/: a throw-away MEDUI_HOME
for the run, copying the registered version out of it, and rewriting its manifest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def temporary_home(prefix: str) -> Iterator[Path]:
    """A throw-away MEDUI_HOME (registry, jobs, database) for one run; yields a scratch folder beside it."""
    from medui.store import reset_engines

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        old_home = os.environ.get("MEDUI_HOME")
        os.environ["MEDUI_HOME"] = str(Path(tmp) / "home")
        reset_engines()
        try:
            yield Path(tmp)
        finally:
            if old_home is None:
                os.environ.pop("MEDUI_HOME", None)
            else:
                os.environ["MEDUI_HOME"] = old_home
            reset_engines()


def ship_version(directory: Path, target: Path) -> None:
    """Copy a registered version's folder to `target` (which must not exist yet)."""
    shutil.copytree(directory, target)
    target.chmod(0o755)  # the registry stages versions in a private temp folder; the shipped one is public


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
