"""What every subcommand shares: its result type, its one-line error, table output and the audit actor."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any


class CliError(Exception):
    """A one-line, user-facing failure."""


@dataclass
class Result:
    """What a command produced: `data` for --json, `text` for people, `exit_code` for scripts."""

    data: Any
    text: str
    exit_code: int = 0


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Plain aligned columns for terminal output."""
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def cli_actor() -> str:
    """Who ran a CLI command, as recorded in the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return "cli:unknown"
