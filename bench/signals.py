"""Signals benchmarks, CGM part: `python bench/signals.py [--json]`.

All consensus metrics for a synthetic 5-subject, 14-day, 5-minute file (one subject with a 6-hour sensor gap) by
medui.signals.cgm against iglu-python (the Python port of R's iglu) on the same rows: wall time of each side and the
largest relative difference per metric. Target: at least 10x faster with identical values (relative error < 1e-9).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medui.signals.cgm import analyse, read_cgm
from medui.signals.cgm.samples import generic_csv, synthetic_frame

IGLU = {  # our key -> (iglu-python function name, extra arguments, result column)
    "mean": ("mean_glu", {}, "mean"), "sd": ("sd_glu", {}, "SD"), "cv": ("cv_glu", {}, "CV"),
    "gmi": ("gmi", {}, "GMI"), "ea1c": ("ea1c", {}, "eA1C"),
    "pct_in_70_180": ("in_range_percent", {"target_ranges": [[70, 180]]}, "in_range_70_180"),
    "pct_below_54": ("below_percent", {"targets_below": [54]}, "below_54"),
    "pct_below_70": ("below_percent", {"targets_below": [70]}, "below_70"),
    "pct_above_180": ("above_percent", {"targets_above": [180]}, "above_180"),
    "pct_above_250": ("above_percent", {"targets_above": [250]}, "above_250"),
    "lbgi": ("lbgi", {}, "LBGI"), "hbgi": ("hbgi", {}, "HBGI"), "gri": ("gri", {}, "GRI"),
    "mage": ("mage", {}, "MAGE"), "conga": ("conga", {}, "CONGA"), "modd": ("modd", {}, "MODD"),
    "j_index": ("j_index", {}, "J_index"), "active_percent": ("active_percent", {}, "active_percent"),
}


def bench_file() -> bytes:
    frame = synthetic_frame(5, days=14, seed=3)
    return generic_csv(frame.drop(frame.index[5000:5072]))  # subject B loses 6 hours of readings


def run_ours(data: bytes, repeats: int) -> tuple[float, float, dict]:
    """Median seconds to read the file and to compute all metrics, and the metrics."""
    reads, metrics = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        cgm = read_cgm(data, "bench.csv")
        middle = time.perf_counter()
        result = analyse(cgm)
        reads.append(middle - start)
        metrics.append(time.perf_counter() - middle)
    return statistics.median(reads), statistics.median(metrics), {s["id"]: s["metrics"] for s in result["subjects"]}


def run_iglu(data: bytes) -> tuple[float, dict, dict]:
    import iglu_python as iglu

    frame = read_cgm(data, "bench.csv").frame  # the same parsed rows, so only the metrics are timed
    values, per_metric = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, (name, kwargs, column) in IGLU.items():
            start = time.perf_counter()
            table = getattr(iglu, name)(frame.copy(), **kwargs)
            per_metric[key] = time.perf_counter() - start
            values[key] = table.set_index("id")[column].to_dict()
    return sum(per_metric.values()), values, per_metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = bench_file()
    read_s, ours_s, ours = run_ours(data, args.repeats)
    iglu_s, theirs, per_metric = run_iglu(data)
    rows = []
    for key in IGLU:
        diffs = [abs(ours[s][key] - v) / max(abs(v), 1e-12) for s, v in theirs[key].items()]
        rows.append({"metric": key, "max_rel_diff": max(diffs), "iglu_python_s": per_metric[key]})
    summary = {"subjects": len(ours), "days": 14, "readings": sum(m["readings"] for m in ours.values()),
               "medui_read_s": read_s, "medui_s": ours_s, "iglu_python_s": iglu_s, "speedup": iglu_s / ours_s,
               "identical": all(r["max_rel_diff"] < 1e-9 for r in rows), "metrics": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{'metric':<16}{'max rel diff':>14}{'iglu-python s':>15}")
    for r in rows:
        print(f"{r['metric']:<16}{r['max_rel_diff']:>14.1e}{r['iglu_python_s']:>15.3f}")
    print(f"\n{summary['subjects']} subjects, {summary['readings']} readings, all metrics: medui {ours_s * 1000:.0f} ms "
          f"(median of {args.repeats}; reading the CSV adds {read_s * 1000:.0f} ms), iglu-python {iglu_s * 1000:.0f} ms"
          f": {summary['speedup']:.0f}x faster; identical values (rel. diff < 1e-9): {summary['identical']}")


if __name__ == "__main__":
    main()
