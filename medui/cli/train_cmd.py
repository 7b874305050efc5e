"""`medui train`: fine-tune an ecg or ner model in a child process and register it as a candidate."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from medui import config as _config
from medui.cli.common import CliError, Result, cli_actor

# CLI flag -> JobSpec field; unset flags leave the spec's (or --spec file's) value alone.
_FLAGS = {"task": "task", "method": "method", "data": "data", "base": "base", "name": "name", "epochs": "epochs",
          "max_steps": "max_steps", "lr": "lr", "batch_size": "batch_size", "seed": "seed",
          "eval_steps": "eval_steps", "skip_bad_rows": "skip_bad_rows", "adapter_size": "adapter_size",
          "train_top_layers": "train_top_layers", "fs": "fs", "image_size": "image_size"}


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "train", parents=[json_parent], help="fine-tune an ecg or ner model and register a candidate version",
        description="Runs one training job to completion in a child process (python -m medui.training.run), "
                    "streaming its log to stderr. The job folder is $MEDUI_HOME/jobs/<job id>/.")
    parser.add_argument("--task", help="ecg, ner, image or mlm")
    parser.add_argument("--method", help="full, lora (default), adalora, ia3, adapter (Houlsby, ner) or head-only")
    parser.add_argument("--data", help="dataset (ecg: .npz, or a .zip of class folders / .csv manifest of recordings; "
                                       "ner: .jsonl, CoNLL or BRAT .zip; image: .zip or .csv; mlm: .txt, .zip or a "
                                       "folder of .txt); default: the bundled sample")
    parser.add_argument("--base", help="'default' or a registered NAME[/VERSION] to start from")
    parser.add_argument("--epochs", type=float, help="passes over the training split (default 3)")
    parser.add_argument("--max-steps", dest="max_steps", type=int, help="stop after N optimizer steps")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: per task and method)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, help="examples per batch (default 8)")
    parser.add_argument("--seed", type=int, help="seed for split, initial weights and batch order (default 0)")
    parser.add_argument("--eval-steps", dest="eval_steps", type=int, help="evaluate and checkpoint every N steps")
    parser.add_argument("--adapter-size", dest="adapter_size", type=int, help="adapter method: bottleneck width")
    parser.add_argument("--train-top-layers", dest="train_top_layers", type=int,
                        help="method full: train only the last K layers (and the head)")
    parser.add_argument("--fs", type=float, help="ecg recordings: sampling rate when the files do not state it")
    parser.add_argument("--image-size", dest="image_size", type=int, help="image: pixels per side (default 224)")
    parser.add_argument("--skip-bad-rows", dest="skip_bad_rows", action="store_true", default=None,
                        help="drop malformed rows instead of failing")
    parser.add_argument("--name", help="registry name (default: the name the task's page serves: ecg-rhythm, "
                                       "chest-findings, notes-ner; mlm: notes-mlm)")
    parser.add_argument("--spec", type=Path, help="a job spec JSON file; flags override its fields")
    parser.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted job from its last checkpoint")
    parser.add_argument("--actor", default=cli_actor(), help="who is recorded in the audit trail")
    parser.add_argument("--submit", action="store_true",
                        help="queue the job and start it in the background (if a slot is free) without waiting; "
                             "prints the job id (follow it with: python -m medui jobs show JOB_ID)")
    parser.set_defaults(handler=run_train)


def _spec(args: argparse.Namespace) -> tuple[Any, str]:
    from medui.training.job import job_dir, new_job_id
    from medui.training.spec import JobSpec, read_json

    if args.resume:
        path = job_dir(args.resume) / "spec.json"
        if not path.is_file():
            raise CliError(f"no job {args.resume} to resume (looked for {path})")
        return JobSpec.from_json(path), args.resume
    raw = read_json(args.spec) if args.spec else {}
    if not isinstance(raw, dict):
        raise CliError(f"{args.spec}: a job spec must be a JSON object")
    raw.update({field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None})
    if "task" not in raw:
        raise CliError("--task is required (ecg or ner)")
    spec = JobSpec.from_dict(raw)
    return spec, new_job_id(spec)


def _child_env() -> dict[str, str]:
    """The child must import this same medui, installed or not."""
    env = dict(os.environ)
    root = str(_config.REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run_child(spec_path: Path, job_id: str, actor: str) -> tuple[int, str]:
    """Run the job, copying its output to stderr line by line; returns (exit code, last 'error:' line)."""
    command = [sys.executable, "-m", "medui.training.run", str(spec_path), "--job-id", job_id, "--actor", actor]
    last_error = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          env=_child_env(), cwd=str(_config.REPO_ROOT)) as child:
        try:
            for line in child.stdout:
                sys.stderr.write(line)
                if line.startswith("error: "):
                    last_error = line[len("error: "):].strip()
            return child.wait(), last_error
        except KeyboardInterrupt:
            # The terminal's Ctrl-C reached the child too; give it time to write its interrupted status.
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            raise CliError(f"job {job_id} interrupted; continue it with: python -m medui train --resume {job_id}")


def run_train(args: argparse.Namespace) -> Result:
    from medui.training.job import read_status, validate_dataset

    if getattr(args, "submit", False):
        return _submit(args)
    spec, job_id = _spec(args)
    validate_dataset(spec)  # a bad file fails here in one line, before a child process loads torch
    jobs = _config.settings().jobs_dir
    jobs.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f".spec-{job_id}-", dir=jobs, delete=False) as tmp:
        json.dump(spec.to_dict(), tmp)
    try:
        code, error = _run_child(Path(tmp.name), job_id, args.actor)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    status = read_status(job_id)
    if code != 0 or status.get("status") != "completed":
        raise CliError(status.get("error") or error or f"job {job_id} ended with exit code {code}")
    data = {key: status.get(key) for key in ("job_id", "status", "model", "version", "metrics", "trainable_params",
                                             "total_params", "stats")}
    headline = {k: round(v, 4) for k, v in status["metrics"].items() if isinstance(v, float)}
    text = (f"job {job_id} completed: {status['model']} version {status['version']} (candidate), "
            f"{status['trainable_params']:,} of {status['total_params']:,} parameters trained\n"
            f"test metrics: {headline}\n"
            f"promote it with: python -m medui models promote {status['model']} {status['version']}")
    return Result(data, text)


def _submit(args: argparse.Namespace) -> Result:
    """`--submit`: queue (spec and dataset checked first) and let the runner start it; do not wait."""
    from medui.training import runner
    from medui.training.jobs import get_job, submit

    if args.resume:
        raise CliError("--submit cannot resume a job; run: python -m medui train --resume JOB_ID")
    spec, job_id = _spec(args)
    job_id = submit(spec, args.actor, job_id=job_id)
    runner.start_next()
    row = get_job(job_id)
    return Result(row, job_id)
