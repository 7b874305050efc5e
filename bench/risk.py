"""Latency of the risk tools on CPU: `python bench/risk.py [--json]`.

- every registered calculator's `calculate()` (inputs from the example patient below; a calculator asking for
  a field the example lacks is skipped and named),
- the learned model's `predict()` (registry lookup + probability + Integrated Gradients attribution), median
  and p95 over 50 calls, against the product target of < 200 ms,
- its peer: a scikit-learn HistGradientBoostingClassifier's predict_proba on one row (fitted here, on the same
  Framingham training split as the shipped model), and the bare MLP forward pass for comparison.

Runs against a throwaway MEDUI_HOME unless one is set, so it never writes to a real database.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# One example patient covering the fields of the calculators we know; values inside every validated range.
PATIENT = {
    "age": 62, "sex": "male", "race": "white", "total_cholesterol": 220, "hdl": 45, "systolic_bp": 142,
    "bp_treated": True, "smoker": True, "diabetes": False, "statin": False, "egfr": 80, "bmi": 28.0,
    "chf": False, "hypertension": True, "stroke_tia": False, "vascular_disease": False, "waist_cm": 98,
    "physical_activity": True, "daily_vegetables": False, "bp_medication": True, "high_glucose_history": False,
    "family_history": "none", "abnormal_renal": False, "abnormal_liver": False, "stroke": False,
    "bleeding": False, "labile_inr": False, "drugs": False, "alcohol": False,
}
MODEL_INPUTS = {"age": 62, "sex": "male", "smoker": True, "cigs_per_day": 15, "bp_treated": True,
                "prevalent_stroke": False, "prevalent_hypertension": True, "diabetes": False,
                "total_cholesterol": 220, "systolic_bp": 142, "diastolic_bp": 88, "bmi": 28.0, "heart_rate": 72,
                "glucose": None}  # one missing value, so imputation is part of the timed path
TARGET_MS = 200.0


def _timed(fn, calls: int) -> list[float]:
    """Milliseconds per call."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _summary(name: str, samples: list[float], **extra) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"name": name, "calls": len(samples), "median_ms": statistics.median(samples), "p95_ms": p95, **extra}


def run(calculator_calls: int = 2000, model_calls: int = 50) -> dict:
    from medui import risk

    rows, skipped = [], []
    for name, calc in sorted(risk.CALCULATORS.items()):
        missing = [f.name for f in calc.fields if f.name not in PATIENT]
        if missing:
            skipped.append(f"{name} (no example for {', '.join(missing)})")
            continue
        inputs = {f.name: PATIENT[f.name] for f in calc.fields}
        risk.calculate(name, inputs)
        call = functools.partial(risk.calculate, name, inputs)
        rows.append(_summary(f"calculator {name}", _timed(call, calculator_calls)))

    import numpy as np
    import torch

    from medui.risk import cohorts, train
    from medui.risk import model as risk_model

    start = time.perf_counter()
    first = risk_model.predict(MODEL_INPUTS)  # imports captum, reads and verifies the weights
    cold_ms = (time.perf_counter() - start) * 1000
    rows.append(_summary("risk-chd predict + attribution", _timed(lambda: risk_model.predict(MODEL_INPUTS),
                                                                   model_calls), first_call_ms=cold_ms))
    loaded = risk_model.load()
    spec = loaded.spec
    values, _, _ = risk_model.complete(spec, risk_model.parse_inputs(spec, MODEL_INPUTS, "bench"), loaded.impute)
    x = loaded.standardise(torch.tensor([spec.encode(values)], dtype=torch.float32))

    def forward():
        with torch.no_grad():
            loaded.probability(x)

    rows.append(_summary("risk-chd MLP forward only (1 row)", _timed(forward, model_calls)))

    cohort = cohorts.load_framingham()
    all_rows = risk_model.rows_from_frame(spec, cohort.inputs)
    tr, _, _ = train.split(cohort.y, seed=0)
    x_gbm = train.encode_for_gbm(spec, all_rows)
    gbm = train.fit_gbm(x_gbm[tr], cohort.y[tr], seed=0)
    one = np.array([spec.encode({**values, "glucose": None})], dtype=np.float32)
    gbm.predict_proba(one)
    rows.append(_summary("peer: sklearn HGB predict_proba (1 row)", _timed(lambda: gbm.predict_proba(one),
                                                                           model_calls)))
    return {"rows": rows, "skipped": skipped, "target_ms": TARGET_MS, "torch_threads": torch.get_num_threads(),
            "example_probability": first["probability"], "model_version": first["version"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=50, help="calls for the model timings (default 50)")
    args = parser.parse_args(argv)
    if not os.environ.get("MEDUI_HOME"):
        os.environ["MEDUI_HOME"] = tempfile.mkdtemp(prefix="medui-bench-")
    result = run(model_calls=args.calls)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'what':<42} {'calls':>6} {'median ms':>10} {'p95 ms':>8}")
    for row in result["rows"]:
        print(f"{row['name']:<42} {row['calls']:>6} {row['median_ms']:>10.3f} {row['p95_ms']:>8.3f}")
    predict_row = next(r for r in result["rows"] if r["name"].startswith("risk-chd predict"))
    verdict = "meets" if predict_row["p95_ms"] < result["target_ms"] else "MISSES"
    print(f"\npredict + attribution p95 {predict_row['p95_ms']:.1f} ms {verdict} the {result['target_ms']:.0f} ms "
          f"target (first call, with imports and weight check: {predict_row['first_call_ms']:.0f} ms; "
          f"torch threads: {result['torch_threads']})")
    for name in result["skipped"]:
        print(f"skipped: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
