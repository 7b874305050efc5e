"""Notes benchmark: `python bench/notes.py [--n 200] [--seed 1] [--json]`.

On the same generated notes (medui.notes.synth, a seed the shipped model was not trained on) with the same
production notes-ner model (adapter merged):
1. MedUI's batched NER (`medui.notes.extract.ner_spans`: overlapping windows, length-sorted dynamic batching,
   torch.inference_mode) against `transformers.pipeline("token-classification", aggregation_strategy="simple")`
   note by note, with the same window and overlap (`stride`): notes/s, tokens/s and peak memory of each, and how
   far both agree on the entity spans (exact span + label, and overlapping same-label spans).
2. The same MedUI path on an int8 copy (torch.ao.quantization.quantize_dynamic on the Linear layers): throughput,
   and its entity F1 against the float model's on the hand-written development set (medui.notes.evaluate).
Each engine runs in its own process, so its peak RSS (ru_maxrss) is its own; memory is reported as the rise
over the process after loading the model. Times are the fastest of --repeats runs; set OMP_NUM_THREADS to
compare thread counts (on a busy machine one thread per process avoids OpenMP spin-waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENGINES = ("medui", "pipeline", "int8")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _quantised(ner):
    import dataclasses

    import torch
    from torch import nn

    return dataclasses.replace(ner, model=torch.ao.quantization.quantize_dynamic(ner.model, {nn.Linear},
                                                                                  dtype=torch.qint8))


def _pipeline_spans(ner, texts: list[str]) -> list[list[dict]]:
    from transformers import pipeline

    from medui.notes.extract import OVERLAP

    ner.tokenizer.model_max_length = ner.window  # the same window as MedUI's, long notes strided alike
    tagger = pipeline("token-classification", model=ner.model, tokenizer=ner.tokenizer,
                      aggregation_strategy="simple", stride=min(OVERLAP, (ner.window - 2) // 4), device=-1)
    return [[{"start": int(e["start"]), "end": int(e["end"]), "label": e["entity_group"]} for e in tagger(text)]
            for text in texts]


def child(engine: str, n: int, seed: int, repeats: int, out: Path) -> None:
    """Run one engine in this process and write its figures and spans to `out`."""
    import torch

    from medui.notes.extract import load_model, ner_spans
    from medui.notes.synth import generate

    texts = [row["text"] for row in generate(n, seed)]
    ner = load_model()
    if engine == "int8":
        ner = _quantised(ner)
    tokens = sum(len(ids) for ids in ner.tokenizer(texts, add_special_tokens=False)["input_ids"])
    run = (lambda t: _pipeline_spans(ner, t)) if engine == "pipeline" else (lambda t: ner_spans(t, model=ner))
    run(texts[:4])  # warm-up
    base = _rss_mb()
    times = []
    for _ in range(repeats):  # the fastest of a few runs: other jobs share this machine's cores
        start = time.perf_counter()
        spans = run(texts)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    figures = {"engine": engine, "notes": n, "tokens": tokens, "seconds": round(seconds, 2),
               "runs_s": [round(t, 2) for t in times], "torch_threads": torch.get_num_threads(),
               "load_average": os.getloadavg()[0],
               "notes_per_s": round(n / seconds, 2), "tokens_per_s": round(tokens / seconds),
               "peak_rss_mb": round(_rss_mb()), "peak_rise_mb": round(_rss_mb() - base),
               "window": ner.window, "model": ner.info}
    if engine != "pipeline":
        from medui.notes.evaluate import evaluate

        figures["dev_entities"] = evaluate(model=ner)["entities"]
    out.write_text(json.dumps({"figures": figures, "spans": [[[s["start"], s["end"], s["label"]] for s in doc]
                                                              for doc in spans]}), encoding="utf-8")


def agreement(a: list[list[list]], b: list[list[list]]) -> dict[str, float]:
    """Exact (span + label) Jaccard over all notes, and the share of spans with a same-label overlap in the other."""
    exact = inter = 0
    overlap_a = overlap_b = 0
    for x, y in zip(a, b):
        sx, sy = {tuple(s) for s in x}, {tuple(s) for s in y}
        inter += len(sx & sy)
        exact += len(sx | sy)
        overlap_a += sum(any(p[2] == q[2] and p[0] < q[1] and q[0] < p[1] for q in y) for p in x)
        overlap_b += sum(any(p[2] == q[2] and p[0] < q[1] and q[0] < p[1] for q in x) for p in y)
    total_a, total_b = sum(map(len, a)), sum(map(len, b))
    return {"exact_jaccard": round(inter / exact, 4) if exact else 1.0,
            "overlap_share": round((overlap_a + overlap_b) / (total_a + total_b), 4) if total_a + total_b else 1.0,
            "spans": [total_a, total_b]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="generator seed (the shipped model trained on seed 0)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per engine; the fastest counts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.n, args.seed, args.repeats, args.out)
        return 0
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            out = Path(tmp) / f"{engine}.json"
            subprocess.run([sys.executable, __file__, "--child", engine, "--n", str(args.n), "--seed", str(args.seed),
                            "--repeats", str(args.repeats), "--out", str(out)], check=True)
            runs[engine] = json.loads(out.read_text(encoding="utf-8"))
    figures = {engine: run["figures"] for engine, run in runs.items()}
    report = {
        "figures": figures,
        "speedup_vs_pipeline": round(figures["medui"]["notes_per_s"] / figures["pipeline"]["notes_per_s"], 2),
        "int8_speedup": round(figures["int8"]["notes_per_s"] / figures["medui"]["notes_per_s"], 2),
        "agreement_medui_pipeline": agreement(runs["medui"]["spans"], runs["pipeline"]["spans"]),
        "agreement_medui_int8": agreement(runs["medui"]["spans"], runs["int8"]["spans"]),
        "int8_dev_f1_cost": {kind: round(figures["medui"]["dev_entities"][kind]["f1"]
                                         - figures["int8"]["dev_entities"][kind]["f1"], 4)
                             for kind in ("lenient", "strict")},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for engine, f in figures.items():
        print(f"{engine:<9} {f['notes_per_s']:>7.2f} notes/s {f['tokens_per_s']:>7} tokens/s  peak RSS {f['peak_rss_mb']} MB "
              f"(+{f['peak_rise_mb']} MB while running)  {f['seconds']} s for {f['notes']} notes")
    print(f"MedUI vs pipeline: {report['speedup_vs_pipeline']}x; span agreement {report['agreement_medui_pipeline']}")
    print(f"int8: {report['int8_speedup']}x MedUI float; agreement {report['agreement_medui_int8']}; "
          f"dev-set F1 cost {report['int8_dev_f1_cost']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
