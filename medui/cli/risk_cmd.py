"""`medui risk`: every calculator, and the learned model, from JSON input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medui.cli.common import CliError, Result, cli_actor
from medui.risk import CALCULATORS, calculate


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("risk", parents=[json_parent], help="clinical risk calculators and the learned model",
                                 description="Scores: " + ", ".join(sorted(CALCULATORS)) + "; 'model' for the learned "
                                 "10-year CHD model.")
    parser.add_argument("name", choices=[*sorted(CALCULATORS), "model"], metavar="NAME",
                        help="a score (" + ", ".join(sorted(CALCULATORS)) + ") or 'model'")
    parser.add_argument("--input", required=True, help="a JSON object of inputs, or @file.json")
    parser.add_argument("--patient", help="save the result for this patient identifier")
    parser.set_defaults(handler=_run)


def read_inputs(raw: str) -> dict[str, Any]:
    """The --input value: inline JSON or @path to a JSON file."""
    if raw.startswith("@"):
        try:
            raw = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {raw[1:]}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"{raw[1:]} is not UTF-8 text (expected a JSON object of named inputs)") from None
    try:
        inputs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--input is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(inputs, dict):
        raise CliError("--input must be a JSON object of named inputs")
    return inputs


def _run(args: argparse.Namespace) -> Result:
    from medui import records

    inputs = read_inputs(args.input)
    if args.name == "model":
        from medui.risk.model import describe, predict

        result = predict(inputs)
        text = f"10-year CHD risk (learned model, calibrated): {100 * result['probability']:.1f}%\n" + "\n".join(
            f"  {describe(a)}" for a in result["attributions"])
        model = (result.get("model"), result.get("version"))
    else:
        result = calculate(args.name, inputs)
        outputs = {k: v for k, v in result.items() if k not in ("score", "inputs", "citation")}
        text = "\n".join(f"{k}: {v}" for k, v in outputs.items()) + f"\nsource: {result['citation']}"
        model = (None, None)
    if args.patient:
        records.save_analysis("risk", {"scores": {args.name: result}}, created_by=cli_actor(), patient=args.patient,
                              input_sha256=records.input_hash(json.dumps(inputs, sort_keys=True).encode()),
                              model_name=model[0], model_version=model[1])
    return Result(result, text)
