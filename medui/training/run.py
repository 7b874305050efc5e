"""`python -m medui.training.run SPEC.json [--job-id ID] [--actor WHO] [--json]`: one job in its own process.

Log lines go to stderr (and the job's log.txt); the outcome is in $MEDUI_HOME/jobs/<job_id>/result.json.
Under `torchrun --nproc_per_node N -m medui.training.run SPEC.json --job-id ID` every rank trains (gloo on CPU)
and rank 0 alone writes result.json and registers the model.
Exit codes: 0 completed, 1 bad spec or dataset (one-line error), 130 interrupted (rerun with --job-id to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from medui.registry import RegistryError
from medui.training.errors import DatasetError, SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.training.run", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="job spec JSON file (see medui.training.spec.JobSpec)")
    parser.add_argument("--job-id", help="job folder name; an unfinished job of that id is resumed")
    parser.add_argument("--actor", default="training", help="who is recorded in the audit trail")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("medui.training").setLevel(logging.INFO)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per log event, not carriage-return progress bars
    try:
        from medui.training.job import run_job
        from medui.training.spec import JobSpec

        result = run_job(JobSpec.from_json(args.spec), job_id=args.job_id, actor=args.actor)
    except (SpecError, DatasetError, RegistryError, ValueError, FileNotFoundError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    from medui.training.job import dist_rank

    if dist_rank()[0] != 0:  # under torchrun the other ranks return rank 0's result: print it once
        return 0
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"job {result['job_id']} completed: {result['model']} version {result['version']} (candidate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
