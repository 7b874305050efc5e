"""`medui cgm`: consensus CGM metrics per subject from a Dexcom, LibreView or generic id,time,gl CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medui.cli.common import CliError, Result, table


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("cgm", parents=[json_parent], help="CGM metrics (iglu definitions) from a CSV export",
                                 description="Reads a Dexcom Clarity or LibreView export, or an id,time,gl table, "
                                 "and prints the consensus metrics per subject (glucose values in mg/dL).")
    parser.add_argument("path", metavar="PATH", help="the CSV export")
    parser.add_argument("--units", choices=["mgdl", "mmol"], help="the file's units, if its header does not say")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> Result:
    from medui.signals.cgm import analyse, read_cgm

    path = Path(args.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    cgm = read_cgm(data, path.name, args.units)
    for note in cgm.notes:  # what was done to the data goes to stderr, so --json stays one object
        print(f"note: {note}", file=sys.stderr)
    result = analyse(cgm)
    columns = ["id", "days", "readings", "sufficient", "mean", "cv", "pct_in_70_180", "pct_below_70", "gmi", "mage"]
    rows = [{"id": s["id"], "days": s["days"], "readings": s["readings"], "sufficient": s["sufficient"],
             **{k: "n/a" if s["metrics"][k] is None else f"{s['metrics'][k]:.1f}" for k in columns[4:]}}
            for s in result["subjects"]]
    text = f"{result['source']} export in {result['units']} (metrics in mg/dL)\n" + table(rows, columns)
    return Result(result, text)
