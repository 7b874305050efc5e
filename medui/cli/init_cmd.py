"""`medui init`: create the database and, on a first start, the admin account."""

from __future__ import annotations

import argparse

from medui.bootstrap import bootstrap, first_admin_banner
from medui.cli.common import Result
from medui.config import settings


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("init", parents=[json_parent], help="create the data folder, database and first admin")
    parser.add_argument("--prepare-vocabularies", action="store_true",
                        help="also build the ICD-10-CM search index now (about 20 s, once), so the first note "
                             "analysed does not wait for it")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> Result:
    password = bootstrap()
    data = {"home": str(settings().home), "admin_created": password is not None}
    text = f"MedUI data folder: {data['home']}"
    if args.prepare_vocabularies:
        from medui.notes.coding import prepare_index, vocabulary_versions

        prepare_index()  # builds the index once and caches it under MEDUI_HOME
        data["vocabularies"] = vocabulary_versions()
        text += "\nICD-10-CM search index ready"
    if password:
        data["admin_password"] = password
        text += "\n" + first_admin_banner(password)
    return Result(data, text)

