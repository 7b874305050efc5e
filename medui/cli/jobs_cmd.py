"""`medui jobs`: list, show and cancel queued and running training jobs (queue them with `train --submit`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medui.cli.common import Result, cli_actor, table

LIST_COLUMNS = ["job_id", "status", "task", "method", "created_by", "created_at", "model"]
METRICS_LINES = 5


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("jobs", help="training jobs: list, show, compare, cancel")
    actions = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[json_parent], help="every job, newest first")
    listing.add_argument("--status", help="only queued, running, succeeded, failed or cancelled jobs")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", parents=[json_parent], help="one job: its row, last metrics and log tail")
    show.add_argument("job_id")
    show.set_defaults(handler=run_show)

    compare = actions.add_parser("compare", parents=[json_parent],
                                 help="score a succeeded job's model and the production version on the job's test "
                                      "split (cached in the job folder)")
    compare.add_argument("job_id")
    compare.set_defaults(handler=run_compare)

    cancel = actions.add_parser("cancel", parents=[json_parent],
                                help="drop a queued job or stop a running one (its whole process group)")
    cancel.add_argument("job_id")
    cancel.add_argument("--actor", default=cli_actor(), help="who is recorded in the audit trail")
    cancel.set_defaults(handler=run_cancel)


def _refresh() -> None:
    """Rows first catch up with their processes, and queued jobs take free slots."""
    from medui.training import runner

    runner.tick()


def _model(row: dict) -> str:
    result = row.get("result") or {}
    return f"{result['model']} v{result['version']}" if result.get("model") else ""


def run_list(args: argparse.Namespace) -> Result:
    from medui.training.jobs import list_jobs

    _refresh()
    rows = list_jobs(args.status)
    shown = [{**r, "model": _model(r)} for r in rows]
    return Result(rows, table(shown, LIST_COLUMNS))


def _metrics_tail(log_path: str, lines: int = METRICS_LINES) -> list[dict]:
    path = Path(log_path).with_name("metrics.jsonl")
    try:
        raw = path.read_text(encoding="utf-8").splitlines()[-lines:]
    except OSError:
        return []
    out = []
    for line in raw:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def run_show(args: argparse.Namespace) -> Result:
    from medui.training.compare import cached_comparison
    from medui.training.jobs import get_job
    from medui.training.runner import log_tail

    _refresh()
    row = get_job(args.job_id)
    metrics = _metrics_tail(row["log_path"])
    tail = log_tail(row["log_path"])
    data = {**row, "metrics_tail": metrics, "log_tail": tail.splitlines()}
    if row["status"] == "succeeded" and (comparison := cached_comparison(row["job_id"])):
        data["comparison"] = comparison
    lines = [f"job {row['job_id']}: {row['status']}",
             f"  task/method: {row['task']} / {row['method']}",
             f"  created:     {row['created_at']} by {row['created_by']}",
             f"  started:     {row['started_at'] or '-'}",
             f"  finished:    {row['finished_at'] or '-'}",
             f"  process:     pid {row['pid'] or '-'} on {row['host'] or '-'}"
             + (f", GPU {row['gpu']}" if row["gpu"] is not None else ""),
             f"  log:         {row['log_path']}"]
    if row["result"]:
        lines.append(f"  result:      {json.dumps(row['result'], sort_keys=True)}")
    if row["error"]:
        lines.append(f"  error:       {row['error'].splitlines()[0]}")
    lines += ["", "last metrics:", *([json.dumps(m, sort_keys=True) for m in metrics] or ["(none)"]),
              "", "log tail:", tail or "(empty)"]
    return Result(data, "\n".join(lines))


def run_compare(args: argparse.Namespace) -> Result:
    from medui.training.compare import compare_with_production, why_not_compared
    from medui.training.monitor import comparison

    result = compare_with_production(args.job_id)  # CompareError (a ValueError): one line, exit 1
    if result is None:
        reason = why_not_compared(args.job_id)
        return Result({"comparable": False, "reason": reason}, f"nothing to compare: {reason}")
    if not result["comparable"]:
        return Result(result, f"cannot compare: {result['reason']}")
    rows = [{k: f"{v:+.4f}" if k == "difference" and v is not None else f"{v:.4f}" if isinstance(v, float) else v
             for k, v in row.items()} for row in comparison(result["task"], result["candidate"], result["production"])]
    return Result(result, f"{result['model']} v{result['candidate_version']} (candidate) vs "
                          f"v{result['production_version']} (production) on the same {result['n']} test examples\n"
                  + table(rows, ["metric", "candidate", "production", "difference", "better"]))


def run_cancel(args: argparse.Namespace) -> Result:
    from medui.training import runner
    from medui.training.jobs import cancel

    row = cancel(args.job_id, args.actor)
    runner.start_next()  # the freed slot goes to the next queued job
    return Result(row, f"job {row['job_id']} cancelled")
