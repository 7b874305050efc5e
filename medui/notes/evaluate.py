"""Scores of the notes pipeline on the hand-written development set (tests/data/notes_dev).

    python -m medui.notes.evaluate [--json]

Entity F1 strict (same span and label) and lenient (same label, overlapping span), overall and per label;
assertion accuracy on gold PROBLEMs the model found; ICD-10-CM top-1 category accuracy (first three characters)
on gold PROBLEMs that carry a code. Assertion and coding are also scored on the gold spans themselves, which
separates the rule layer's errors from the model's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from medui.notes.extract import LABELS, NerModel, extract_many


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["label"] == b["label"] and a["start"] < b["end"] and b["start"] < a["end"]


def _prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, float]:
    p = tp_pred / n_pred if n_pred else 0.0
    r = tp_gold / n_gold if n_gold else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "gold": n_gold, "predicted": n_pred}


def entity_scores(gold: list[list[dict]], pred: list[list[dict]], labels: tuple[str, ...] = LABELS) -> dict:
    """{"strict": {...}, "lenient": {...}, "per_label": {label: {"strict", "lenient"}}}."""
    def score(only: str | None) -> dict[str, dict[str, float]]:
        g = [[e for e in doc if only in (None, e["label"])] for doc in gold]
        p = [[e for e in doc if only in (None, e["label"])] for doc in pred]
        keys = [({(e["start"], e["end"], e["label"]) for e in gd}, {(e["start"], e["end"], e["label"]) for e in pd})
                for gd, pd in zip(g, p)]
        strict_tp = sum(len(gk & pk) for gk, pk in keys)
        n_gold, n_pred = sum(map(len, g)), sum(map(len, p))
        lenient_pred = sum(any(_overlaps(e, x) for x in gd) for gd, pd in zip(g, p) for e in pd)
        lenient_gold = sum(any(_overlaps(e, x) for x in pd) for gd, pd in zip(g, p) for e in gd)
        return {"strict": _prf(strict_tp, n_pred, strict_tp, n_gold),
                "lenient": _prf(lenient_pred, n_pred, lenient_gold, n_gold)}

    overall = score(None)
    return {**overall, "per_label": {label: score(label) for label in labels}}


def _match(entity: dict, predicted: list[dict]) -> dict | None:
    """The predicted entity of the same label overlapping a gold one most."""
    hits = [p for p in predicted if _overlaps(entity, p)]
    return max(hits, key=lambda p: min(p["end"], entity["end"]) - max(p["start"], entity["start"]), default=None)


def rule_scores(texts: list[str], gold: list[list[dict]], pred: list[list[dict]]) -> dict[str, Any]:
    """Assertion and ICD-10 category accuracy, on matched PROBLEMs and on the gold spans."""
    from medui.notes.assertion import assert_entity
    from medui.notes.coding import icd10_candidates
    from medui.notes.sections import find_sections, section_at

    assertion = {"matched": [0, 0], "gold_spans": [0, 0]}
    icd = {"matched": [0, 0], "all_gold": [0, 0], "gold_spans": [0, 0]}
    confusions: dict[str, int] = {}
    for text, gd, pd in zip(texts, gold, pred):
        sections = find_sections(text)
        for entity in (e for e in gd if e["label"] == "PROBLEM"):
            found = _match(entity, pd)
            if entity.get("assertion"):
                on_gold = assert_entity(text, entity["start"], entity["end"],
                                        section_at(sections, entity["start"])).value
                assertion["gold_spans"][0] += on_gold == entity["assertion"]
                assertion["gold_spans"][1] += 1
                if found:
                    assertion["matched"][0] += found["assertion"] == entity["assertion"]
                    assertion["matched"][1] += 1
                    if found["assertion"] != entity["assertion"]:
                        key = f"{entity['assertion']}->{found['assertion']}"
                        confusions[key] = confusions.get(key, 0) + 1
            if entity.get("icd10"):
                category = entity["icd10"].replace(".", "")[:3].upper()
                top = found["codes"][0]["code"].replace(".", "")[:3].upper() if found and found["codes"] else None
                icd["all_gold"][0] += top == category
                icd["all_gold"][1] += 1
                if found:
                    icd["matched"][0] += top == category
                    icd["matched"][1] += 1
                codes = icd10_candidates(text[entity["start"]:entity["end"]], 1)
                icd["gold_spans"][0] += bool(codes) and codes[0].code.replace(".", "")[:3].upper() == category
                icd["gold_spans"][1] += 1

    def rate(pair: list[int]) -> dict[str, Any]:
        return {"accuracy": round(pair[0] / pair[1], 4) if pair[1] else None, "n": pair[1]}

    return {"assertion": {k: rate(v) for k, v in assertion.items()} | {"confusions": confusions},
            "icd10_category": {k: rate(v) for k, v in icd.items()}}


def evaluate(*, model: NerModel | None = None, notes: list[dict[str, Any]] | None = None,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """All dev-set figures for one model (default: production notes-ner)."""
    from medui.notes.devset import load_devset

    notes = notes if notes is not None else load_devset()
    if not notes:
        raise ValueError("no development notes to evaluate on")
    texts = [n["text"] for n in notes]
    results = extract_many(texts, model=model, progress=progress)
    gold = [n["entities"] for n in notes]
    pred = [r["entities"] for r in results]
    return {"notes": len(notes), "model": results[0]["model"] if results else None,
            "entities": entity_scores(gold, pred), **rule_scores(texts, gold, pred)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.notes.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = evaluate()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    ent = report["entities"]
    print(f"{report['notes']} notes, model {report['model']['name']} v{report['model']['version']}")
    print(f"entity F1 lenient {ent['lenient']['f1']:.3f}, strict {ent['strict']['f1']:.3f}")
    for label, s in ent["per_label"].items():
        print(f"  {label:<10} lenient {s['lenient']['f1']:.3f} strict {s['strict']['f1']:.3f} "
              f"(gold {s['lenient']['gold']}, predicted {s['lenient']['predicted']})")
    for key in ("assertion", "icd10_category"):
        print(f"{key}: " + ", ".join(f"{k} {v['accuracy']} (n={v['n']})" for k, v in report[key].items()
                                     if isinstance(v, dict) and "n" in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
