"""Trainer callbacks: metrics.jsonl streaming with readable log lines, and AdaLoRA's per-step rank budget."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger("medui.training")


def _event(logs: dict[str, Any]) -> str:
    if any(key.startswith("eval_") for key in logs):
        return "eval"
    if "train_runtime" in logs:
        return "summary"
    return "train"


class MetricsJsonl(TrainerCallback):
    """One JSON object per log or evaluation event, appended and flushed so a UI can tail the file live."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not logs or not state.is_world_process_zero:
            return
        row = {"event": _event(logs), "step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3)}
        row.update({("lr" if key == "learning_rate" else key): value for key, value in logs.items()})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=float) + "\n")
        if row["event"] == "train":
            log.info("step %d/%d  loss %.4f  lr %.2e", state.global_step, state.max_steps,
                     row.get("loss", float("nan")), row.get("lr", 0.0))
        elif row["event"] == "eval":
            shown = {k[5:]: round(v, 4) for k, v in logs.items() if k.startswith("eval_") and isinstance(v, float)
                     and not k.endswith(("runtime", "per_second"))}
            log.info("step %d  validation %s", state.global_step, shown)


def truncate_metrics(path: Path, after_step: int) -> None:
    """On resume, drop lines the killed run wrote after its last checkpoint: those steps are redone."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= after_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


class AdaLoraStep(TrainerCallback):
    """AdaLoRA must re-score and re-allocate ranks after every optimizer step, while gradients still exist.

    `on_optimizer_step` runs after optimizer.step() and before zero_grad(), which is where peft wants it.
    """

    def on_optimizer_step(self, args, state, control, model=None, **kwargs) -> None:
        model.base_model.update_and_allocate(state.global_step)
