"""`python -m medui`: the headless twin of every page. Each subcommand module adds itself with `register`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from medui.cli import (
    audit_cmd,
    cgm_cmd,
    dicom_cmd,
    ecg_cmd,
    imaging_cmd,
    init_cmd,
    jobs_cmd,
    models_cmd,
    notes_cmd,
    risk_cmd,
    train_cmd,
    users_cmd,
)
from medui.cli.common import CliError, Result, table

COMMAND_MODULES = (init_cmd, users_cmd, models_cmd, audit_cmd, risk_cmd, cgm_cmd, ecg_cmd, dicom_cmd, imaging_cmd,
                   train_cmd, jobs_cmd, notes_cmd)
__all__ = ["CliError", "Result", "main", "table"]


def json_flag() -> argparse.ArgumentParser:
    """A parent parser giving every subcommand a --json switch."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medui", description="MedUI command line: the headless twin of every page.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands, json_flag())
    return parser


def _user_facing_errors() -> tuple[type[Exception], ...]:
    from medui.auth import AuthError
    from medui.registry import RegistryError
    from medui.uploads import UploadRejected

    return CliError, AuthError, RegistryError, UploadRejected, ValueError, FileNotFoundError, PermissionError  # RiskInputError is a ValueError


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except _user_facing_errors() as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        print(f"error: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.data, indent=2, default=str))
    elif result.text:
        print(result.text)
    return result.exit_code
