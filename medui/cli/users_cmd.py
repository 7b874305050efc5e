"""`medui users`: add, list, disable, enable and reset local accounts."""

from __future__ import annotations

import argparse
import dataclasses

from medui import auth
from medui.cli.common import Result, cli_actor, table


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    users = commands.add_parser("users", help="manage local accounts")
    actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", parents=[json_parent], help="add an account")
    add.add_argument("--username", required=True)
    add.add_argument("--password", required=True, help="at least 10 characters, not containing the username")
    add.add_argument("--role", required=True, choices=auth.ROLES)
    add.add_argument("--must-change-password", action="store_true", help="ask for a new password at first sign-in")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", parents=[json_parent], help="list accounts")
    listing.set_defaults(handler=_list)

    for name, handler, text in (("disable", _disable, "disable an account and end its sessions"),
                                ("enable", _enable, "re-enable an account and clear its lockout"),
                                ("reset-password", _reset, "set a one-time password that must be changed")):
        sub = actions.add_parser(name, parents=[json_parent], help=text)
        sub.add_argument("--username", required=True)
        sub.set_defaults(handler=handler)


def _add(args):
    user = auth.create_user(args.username, args.password, args.role, actor=cli_actor(),
                            must_change_password=args.must_change_password)
    return Result(dataclasses.asdict(user), f"Added {user.role} {user.username!r}.")


def _list(args):
    rows = [dataclasses.asdict(u) for u in auth.list_users()]
    return Result(rows, table(rows, ["username", "role", "active", "locked", "must_change_password", "created_at"]))


def _disable(args):
    auth.set_active(args.username, False, actor=cli_actor())
    return Result({"username": args.username, "active": False}, f"Disabled {args.username!r}.")


def _enable(args):
    auth.set_active(args.username, True, actor=cli_actor())
    return Result({"username": args.username, "active": True}, f"Enabled {args.username!r}.")


def _reset(args):
    temporary = auth.reset_password(args.username, actor=cli_actor())
    return Result({"username": args.username, "temporary_password": temporary},
                  f"One-time password for {args.username!r}: {temporary}\nIt must be changed at the next sign-in.")
