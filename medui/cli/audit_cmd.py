"""`medui audit`: verify the hash chain and list events."""

from __future__ import annotations

import argparse
import dataclasses

from medui import audit
from medui.cli.common import Result, table


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("audit", help="inspect the audit trail")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    verify = actions.add_parser("verify", parents=[json_parent], help="check that no row was edited or deleted")
    verify.set_defaults(handler=_verify)

    listing = actions.add_parser("list", parents=[json_parent], help="newest events first")
    listing.add_argument("--actor")
    listing.add_argument("--action", dest="event_action", metavar="ACTION")
    listing.add_argument("--outcome", choices=audit.OUTCOMES)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)


def _verify(args):
    report = audit.verify()
    if report.ok:
        text = f"Audit chain intact: {report.checked} rows verified."
    else:
        text = "Audit chain BROKEN:\n" + "\n".join(f"  - {p}" for p in report.problems)
    return Result(dataclasses.asdict(report), text, exit_code=0 if report.ok else 2)


def _list(args):
    if args.limit <= 0:
        raise ValueError("--limit must be positive")
    rows = audit.events(actor=args.actor, action=args.event_action, outcome=args.outcome, limit=args.limit)
    return Result(rows, table(rows, ["id", "time", "actor", "action", "outcome", "patient"]))
