"""`medui init`: create the database and, on a first start, the admin account."""

from __future__ import annotations

import argparse

from medui.bootstrap import bootstrap, first_admin_banner
from medui.cli.common import Result
from medui.config import settings


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("init", parents=[json_parent], help="create the data folder, database and first admin")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    password = bootstrap()
    data = {"home": str(settings().home), "admin_created": password is not None}
    text = f"MedUI data folder: {data['home']}"
    if password:
        data["admin_password"] = password
        text += "\n" + first_admin_banner(password)
    return Result(data, text)

