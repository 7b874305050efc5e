"""`medui models`: list, show, verify, promote, roll back and import registered models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medui.cli.common import Result, cli_actor, table
from medui.registry import get_version, import_model, list_versions, promote, rollback, verify_files

LIST_COLUMNS = ["name", "version", "task", "method", "stage", "origin", "created_at"]


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("models", help="the model registry: list, show, verify, promote, rollback, import")
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[json_parent], help="every registered version and its stage")
    listing.add_argument("--name", help="only this model")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", parents=[json_parent], help="one version's manifest (default: production)")
    show.add_argument("name")
    show.add_argument("version", nargs="?")
    show.set_defaults(handler=run_show)

    verify = actions.add_parser("verify", parents=[json_parent], help="check every file against its sha256")
    verify.add_argument("name")
    verify.add_argument("version", nargs="?")
    verify.set_defaults(handler=run_verify)

    promote = actions.add_parser("promote", parents=[json_parent], help="make a version the production one")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--note", default="", help="why (kept with the promotion history)")
    promote.add_argument("--actor", default=cli_actor(), help="who is recorded in the audit trail")
    promote.set_defaults(handler=run_promote)

    rollback = actions.add_parser("rollback", parents=[json_parent], help="restore the previous production version")
    rollback.add_argument("name")
    rollback.add_argument("--actor", default=cli_actor(), help="who is recorded in the audit trail")
    rollback.set_defaults(handler=run_rollback)

    imp = actions.add_parser("import", parents=[json_parent],
                             help="register a local Hugging Face folder or .safetensors file as a candidate")
    imp.add_argument("path", type=Path)
    imp.add_argument("--task", required=True, help="ner, image, ecg or mlm")
    imp.add_argument("--name", help="model name (default: from the folder or file name)")
    imp.add_argument("--base-model", dest="base_model", help="what it was trained from")
    imp.add_argument("--actor", default=cli_actor(), help="who is recorded in the audit trail")
    imp.set_defaults(handler=run_import)


def _row(mv) -> dict:
    return {"name": mv.name, "version": mv.version, "task": mv.task, "method": mv.method, "stage": mv.stage,
            "origin": "shipped" if mv.shipped else "trained", "created_at": mv.created_at}


def _describe(mv) -> str:
    lines = [
        f"{mv.name} version {mv.version} ({mv.stage}, {'shipped' if mv.shipped else 'trained'})",
        f"  task:       {mv.task}",
        f"  base model: {mv.base_model or '-'}",
        f"  method:     {mv.method}",
        f"  labels:     {', '.join(mv.labels) or '-'}",
        f"  created:    {mv.created_at or '-'}",
        f"  folder:     {mv.directory}",
        f"  metrics:    {json.dumps(mv.metrics, sort_keys=True) if mv.metrics else '-'}",
        f"  provenance: {json.dumps(mv.provenance, sort_keys=True) if mv.provenance else '-'}",
        "",
        table([{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in mv.files], ["path", "bytes", "sha256"]),
    ]
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> Result:
    versions = list_versions(args.name)
    return Result([mv.to_dict() for mv in versions], table([_row(mv) for mv in versions], LIST_COLUMNS))


def run_show(args: argparse.Namespace) -> Result:
    mv = get_version(args.name, args.version)
    return Result(mv.to_dict(), _describe(mv))


def run_verify(args: argparse.Namespace) -> Result:
    mv = get_version(args.name, args.version)
    verify_files(mv)  # a RegistryError here becomes a one-line error and exit code 1
    data = {"name": mv.name, "version": mv.version, "ok": True, "files": len(mv.files)}
    return Result(data, f"{mv.name} version {mv.version}: {len(mv.files)} files match their sha256")


def run_promote(args: argparse.Namespace) -> Result:
    before = [mv.version for mv in list_versions(args.name) if mv.stage == "production"]
    mv = promote(args.name, args.version, actor=args.actor, note=args.note)
    previous = f" (version {before[-1]} archived)" if before else ""
    return Result(mv.to_dict(), f"{mv.name} version {mv.version} is now in production{previous}")


def run_rollback(args: argparse.Namespace) -> Result:
    current = get_version(args.name)
    mv = rollback(args.name, actor=args.actor)
    return Result(mv.to_dict(), f"{mv.name} rolled back to version {mv.version} (version {current.version} archived)")


def run_import(args: argparse.Namespace) -> Result:
    mv = import_model(args.path, task=args.task, actor=args.actor, name=args.name, base_model=args.base_model)
    text = (f"imported {args.path} as {mv.name} version {mv.version} (candidate); "
            f"promote it with: python -m medui models promote {mv.name} {mv.version}")
    return Result(mv.to_dict(), text)
