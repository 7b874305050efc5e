"""`medui imaging`: medical images from the command line; `synth` writes labelled phantom chest radiographs."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from medui.cli.common import CliError, Result


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("imaging", help="medical images: synthetic labelled phantoms")
    actions = parser.add_subparsers(dest="imaging_command", metavar="ACTION", required=True)

    synth = actions.add_parser("synth", parents=[json_parent], help="write phantom chest CR DICOM files and labels.csv",
                               description="Synthetic chest radiographs (marked as such, not patients) with nodules "
                               "and effusions at known boxes; the same seed writes byte-identical files.")
    synth.add_argument("--n", type=int, required=True, help="how many images")
    synth.add_argument("--seed", type=int, required=True, help="random seed (>= 0); same seed, same files")
    synth.add_argument("--out", type=Path, required=True, help="folder for the .dcm files and labels.csv")
    synth.add_argument("--size", type=int, default=512, help="image width and height in pixels (128-4096)")
    synth.add_argument("--mix", help="category prevalence, e.g. normal=0.5,nodule=0.2,effusion=0.2,both=0.1")
    synth.set_defaults(handler=run_synth)


def parse_mix(raw: str | None) -> dict[str, float] | None:
    """`normal=0.5,nodule=0.5` → {"normal": 0.5, "nodule": 0.5}; the generator checks names and weights."""
    if raw is None:
        return None
    mix = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, weight = part.partition("=")
        try:
            if not sep:
                raise ValueError
            mix[name.strip()] = float(weight)
        except ValueError:
            raise CliError(f"--mix entries look like name=weight, not {part!r}") from None
    return mix


def run_synth(args: argparse.Namespace) -> Result:
    from medui.imaging.phantom import generate

    labels = generate(args.n, args.seed, args.out, args.size, mix=parse_mix(args.mix))
    with labels.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    files = list(dict.fromkeys(row["file"] for row in rows))
    counts = dict(sorted(Counter(row["label"] for row in rows).items()))  # label rows: one per finding or clean image
    data = {"out": str(args.out), "files": files, "labels_csv": str(labels), "counts": counts}
    text = (f"wrote {len(files)} synthetic phantom DICOM files to {args.out} (not patients)\n"
            f"labels: {labels}\n" + "\n".join(f"  {label}: {n}" for label, n in counts.items()))
    return Result(data, text)
