"""The Trainer run inside a job folder: arguments, callbacks, resume, test metrics, registration."""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from medui.device import pick_device
from medui.training import artifacts
from medui.training.bases import resolve_base
from medui.training.callbacks import AdaLoraStep, MetricsJsonl, truncate_metrics
from medui.training.data import report, split
from medui.training.errors import SpecError
from medui.training.job import dist_rank
from medui.training.methods import apply_method, count_params
from medui.training.spec import JobSpec
from medui.training.tasks import get_task
from medui.training.trainer import MedTrainer

log = logging.getLogger("medui.training")


def training_args(spec: JobSpec, folder: Path, steps_per_epoch: int, mlflow: bool = False) -> Any:
    from transformers import TrainingArguments

    device = pick_device()
    # With max_steps, "every epoch" may never come: evaluate (and checkpoint) on a step schedule instead.
    every = spec.eval_steps or (min(steps_per_epoch, spec.max_steps) if spec.max_steps else 0)
    schedule = {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": every, "save_steps": every} \
        if every else {"eval_strategy": "epoch", "save_strategy": "epoch"}
    cuda = device.startswith("cuda")
    distributed = dist_rank()[1] > 1  # under torchrun: gloo on CPU (nccl, the CUDA default, needs GPUs)
    return TrainingArguments(
        output_dir=str(folder / "checkpoints"), num_train_epochs=spec.epochs, max_steps=spec.max_steps or -1,
        per_device_train_batch_size=spec.batch_size, per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum, learning_rate=spec.lr, weight_decay=spec.weight_decay,
        optim="adamw_torch", lr_scheduler_type="linear", warmup_steps=spec.warmup_ratio,  # a float < 1 is a ratio
        seed=spec.seed, data_seed=spec.seed, **schedule, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False, logging_strategy="steps",
        logging_steps=spec.logging_steps, logging_first_step=True, disable_tqdm=True,
        report_to=["tensorboard", *(["mlflow"] if mlflow else [])], run_name=folder.name,
        remove_unused_columns=False, label_names=["labels"], use_cpu=device == "cpu", dataloader_pin_memory=cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(), fp16=cuda and not torch.cuda.is_bf16_supported(),
        ddp_backend="gloo" if distributed and device == "cpu" else None,
    )


def _callbacks(spec: JobSpec, folder: Path, extra: list) -> list:
    from transformers import EarlyStoppingCallback

    found = [MetricsJsonl(folder / "metrics.jsonl"), *extra]
    if spec.patience:
        found.append(EarlyStoppingCallback(early_stopping_patience=spec.patience))
    if spec.method == "adalora":
        found.append(AdaLoraStep())
    return found


def _use_job_loggers(trainer: Any, folder: Path, main: bool = True) -> None:
    """report_to adds TensorBoard logging under checkpoints/runs/; point it at the job's own tensorboard/ folder.

    Also drops the PrinterCallback (raw log dicts on stdout): MetricsJsonl already logs one readable line.
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers import PrinterCallback
    from transformers.integrations import TensorBoardCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(TensorBoardCallback)
    if main:  # one event file per job: only rank 0 of a torchrun job writes TensorBoard logs
        trainer.add_callback(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder / "tensorboard"))))


def mlflow_module() -> Any:
    """mlflow when MLFLOW_TRACKING_URI is set (metrics then also go there), else None; checked before any work."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    try:
        import mlflow
    except ImportError:
        raise SpecError("MLFLOW_TRACKING_URI is set but mlflow is not installed: pip install mlflow-skinny, "
                        "or unset MLFLOW_TRACKING_URI") from None
    return mlflow


@contextmanager
def _mlflow_run(mlflow: Any, spec: JobSpec, job_id: str) -> Iterator[Any]:
    """One MLflow run per job attempt, named after the job, holding the spec as parameters.

    Started here rather than by the Trainer's MLflowCallback (which then logs into it), so that the test metrics
    and the registered version land in the same run. A resumed job starts a new run with the same name: MLflow
    refuses changed parameters in an existing run, and a resume may change epochs or max_steps.
    """
    if mlflow is None:
        yield None
        return
    with mlflow.start_run(run_name=job_id, tags={"medui.job_id": job_id, "medui.task": spec.task,
                                                 "medui.method": spec.method}):
        mlflow.log_params({f"spec.{key}": value for key, value in spec.to_dict().items()})
        yield mlflow


def _peak_memory_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if sys.platform == "darwin":
        peak /= 1024  # bytes on macOS
    if torch.cuda.is_available():
        peak = max(peak, torch.cuda.max_memory_allocated() / 2 ** 20)
    return round(peak, 1)


def train_and_register(spec: JobSpec, job_id: str, folder: Path, actor: str, extra_callbacks: list) -> dict:
    mlflow = mlflow_module()  # a missing mlflow fails the job before any work
    with _mlflow_run(mlflow if dist_rank()[0] == 0 else None, spec, job_id) as tracker:
        return _train_and_register(spec, job_id, folder, actor, extra_callbacks, mlflow is not None, tracker)


def _train_and_register(spec: JobSpec, job_id: str, folder: Path, actor: str, extra_callbacks: list,
                        use_mlflow: bool, tracker: Any) -> dict:
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from medui.registry import register_version

    started = time.time()
    rank, world = dist_rank()
    main = rank == 0  # under torchrun, rank 0 alone writes the job's files and registers the model
    if world > 1:
        log.info("rank %d of %d (torchrun)", rank, world)
    task = get_task(spec.task)
    set_seed(spec.seed)  # before building: a fresh head or a scratch ECG net must be reproducible
    examples = task.read(Path(spec.data), spec)
    splits = split(examples.keys, spec.seed, spec.val_fraction, spec.test_fraction)
    base = resolve_base(spec.task, spec.base, task.accepted_bases)
    built = task.build(base, examples.labels, examples.info, spec)
    final_dir = folder / "final"
    if base.kind == "scratch" and spec.method != "full" and main:
        # other ranks get rank 0's weights when the Trainer wraps the model in DistributedDataParallel
        saved = final_dir / artifacts.SCRATCH_BASE
        if saved.is_file():  # resuming: adapter checkpoints only make sense on the very base they adapted
            built.model.load_state_dict(load_file(str(saved)))
        else:
            artifacts.save_scratch_base(built.model, final_dir)
    encoded = {name: task.encode(built, examples, idx, spec) for name, idx in splits.items()}
    summary = report(examples, Path(spec.data), splits)
    summary["unaligned"] = [problem for _, problems in encoded.values() for problem in problems]
    if main:
        (folder / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("dataset %s: %d rows, %d used, splits %s, labels %s", summary["path"], summary["rows"],
             summary["accepted"], summary["sizes"], summary["counts"])
    for problem in summary["unaligned"]:
        log.warning("%s", problem["reason"])

    steps_per_epoch = max(1, math.ceil(len(encoded["train"][0]) / (spec.batch_size * spec.grad_accum * world)))
    total_steps = spec.max_steps or max(1, math.ceil(steps_per_epoch * spec.epochs))
    model = apply_method(built.model, task, spec, total_steps)
    trainable, total = count_params(model)
    log.info("%s on %s: %d of %d parameters trainable (%.2f%%), %d steps", spec.method, base.id, trainable, total,
             100 * trainable / total, total_steps)

    labels = examples.labels
    trainer = MedTrainer(
        model=model, args=training_args(spec, folder, steps_per_epoch, use_mlflow),
        train_dataset=encoded["train"][0],
        eval_dataset=encoded["validation"][0], data_collator=task.collator(built),
        compute_metrics=lambda p: task.eval_metrics(p.predictions, p.label_ids, labels),
        callbacks=_callbacks(spec, folder, extra_callbacks))
    _use_job_loggers(trainer, folder, main)
    checkpoints = folder / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        log.info("resuming from %s", Path(last).name)
        if main:
            truncate_metrics(folder / "metrics.jsonl", int(Path(last).name.split("-")[-1]))
    train_out = trainer.train(resume_from_checkpoint=last)

    predicted = trainer.predict(encoded["test"][0])  # every rank: a collective that gathers all predictions
    if not main:
        return _from_rank0(None)
    test = task.test_report(predicted.predictions, predicted.label_ids, labels)
    with open(folder / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": "test", "step": trainer.state.global_step, **test}) + "\n")
    _save_predictions(folder, splits["test"], predicted.predictions, spec.task)
    files = artifacts.save_final(trainer.model, task, spec, built, base, labels, final_dir)
    stats = {
        "global_step": trainer.state.global_step, "resumed_from": Path(last).name if last else None,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint or "").name or None,
        "train_runtime_s": round(train_out.metrics.get("train_runtime", 0.0), 2),
        "steps_per_second": train_out.metrics.get("train_steps_per_second"),
        "wall_time_s": round(time.time() - started, 2), "peak_memory_mb": _peak_memory_mb(),
        "adapter_bytes": files[artifacts.TRAINED_WEIGHTS[spec.method]].stat().st_size,
        "device": pick_device(), "world_size": world,
    }
    if spec.method == "adalora":
        stats["adalora_ranks"] = {k: int(sum(v)) for k, v in (model.peft_config["default"].rank_pattern or {}).items()}
    mv = register_version(
        spec.name, spec.task, files, base_model=base.id, method=spec.method, labels=labels,
        metrics={**test, "training": {**stats, "trainable_params": trainable, "total_params": total}},
        provenance={"data_sha256": summary["sha256"], "data": spec.data, "spec": spec.to_dict(), "base": base.id,
                    "job_id": job_id, "splits": summary["sizes"]},
        actor=actor)
    scalars = {k: v for k, v in test.items() if isinstance(v, float)}
    log.info("registered %s version %s (candidate): %s", mv.name, mv.version, scalars)
    if tracker is not None:
        tracker.log_metrics({f"test_{k}": v for k, v in scalars.items()}, step=trainer.state.global_step)
        tracker.set_tags({"medui.model": mv.name, "medui.version": mv.version,
                          "medui.trainable_params": trainable})
    return _from_rank0({"job_id": job_id, "status": "completed", "model": mv.name, "version": mv.version,
                        "metrics": test, "trainable_params": trainable, "total_params": total, "stats": stats})


def _from_rank0(result: dict | None) -> dict:
    """Under torchrun, rank 0's result for every rank (the others wait here until it has registered the model)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [result]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    return result


def _save_predictions(folder: Path, indices: list[int], logits: Any, task: str) -> None:
    """The test-split outputs of the final model, so a reloaded version can be checked against them."""
    logits = np.asarray(logits)
    body = {"indices": indices, "logits": logits.tolist() if task != "ner" else None,
            "predictions": logits.argmax(-1).tolist()}
    (folder / "test_predictions.json").write_text(json.dumps(body) + "\n", encoding="utf-8")
