"""Reproducible synthetic clinical notes with gold entity spans, for training the notes model.

``generate(n, seed)`` returns records ``{"text", "entities": [{"start", "end", "label", "section", "assertion"?,
"historical"?}], "meta": {...}}``; ``write_jsonl(path, n, seed)`` writes them one per line in the fine-tuning JSONL
span format (medui/training/tasks/ner.py reads ``text`` and ``entities`` and ignores the rest). Note ``i`` depends
only on ``(seed, i)``, so a larger ``n`` extends a smaller one. Styles: full H&P, SOAP progress note, discharge
summary, medication list, headerless narrative, short triage note and radiology report; CRLF line endings, tabs, typos, upper-cased
notes and a little Unicode are mixed in. Entity spans are placed by construction (synth_doc.Doc), never searched for.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from medui.notes.lexicon import SECTION_HEADERS, SECTIONS
from medui.notes.synth_doc import Doc
from medui.notes.synth_sections import SENTENCES, WRITERS, Ctx, med_line, radiology_report
from medui.notes.synth_vocab import Vocab, long_tail_drugs

GENERATOR = "medui.notes.synth/3"  # bump when a change alters the notes a seed gives
STYLES = ("hp", "progress", "discharge", "medlist", "narrative", "triage", "radiology")
_STYLE_WEIGHTS = (30, 20, 18, 12, 12, 8, 6)
_UNICODE_BITS = ("Daughter (Zoë) at bedside. ", "Seen with Spanish interpreter — Sr. Muñoz. ", "Pain 7/10 → 3/10. ",
                 "Temp trend ↓ overnight. ", "Pleasant, smiling 🙂. ", "Résumé of prior visits reviewed… ",
                 "Weight ≈ 82 kg. ", "Spouse: José. ")
_VARIANTS = {canonical: sorted(k for k, v in SECTION_HEADERS.items() if v == canonical and len(k) > 1)
             for canonical in SECTIONS}


def _header(doc: Doc, rng: random.Random, section: str, variant: str | None = None) -> None:
    variant = variant or rng.choice(_VARIANTS[section])
    case = rng.random()
    text = variant.upper() if case < 0.4 else variant.title() if case < 0.7 else variant
    if section == "HPI" and variant == "hpi":
        text = "HPI"
    inline = rng.random() < 0.35
    # A header without a colon only stands on its own line; inline it always ends in ":" or " -".
    text += rng.choice((":", ":", " -")) if inline else rng.choice((":", ":", "", ":"))
    doc.text("\n" if rng.random() < 0.5 and doc.length else "")
    doc.header(section, text, inline)


def _sections(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, names: list[str], long: bool) -> None:
    for name in names:
        _header(doc, rng, name)
        WRITERS[name](doc, v, rng, ctx)
        if long and name in ("HPI", "Assessment/Plan"):
            for kind in rng.choices(list(SENTENCES), k=rng.randint(6, 14)):
                SENTENCES[kind](doc, v, rng, ctx)
            doc.text("\n")


def _hp(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    optional = [s for s in SECTIONS if s not in ("HPI", "Assessment/Plan")]
    keep = set(optional if long else rng.sample(optional, rng.randint(2, len(optional))))
    names = [*[s for s in optional if s in keep], "Assessment/Plan"]
    if rng.random() < 0.5:  # "CC:" / "Chief complaint:" are HPI headers for the section parser too
        doc.header("HPI", rng.choice(("CC:", "Chief complaint:", "Reason for visit:")), inline=True)
        doc.ent(v.problem())
        doc.text("\n")
        _header(doc, rng, "HPI", rng.choice(("hpi", "history of present illness", "present illness")))
        WRITERS["HPI"](doc, v, rng, ctx)
    else:
        names.insert(0, "HPI")
    _sections(doc, v, rng, ctx, names, long)


def _progress(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    soap = rng.random() < 0.5
    for section, short in (("HPI", "S"), ("Physical exam", "O"), ("Labs/Results", None), ("Assessment/Plan", "A/P")):
        if short is None and rng.random() < 0.5:
            continue
        doc.text("\n" if doc.length else "")
        if soap and short:
            doc.header(section, short + ":", inline=True)
        else:
            _header(doc, rng, section)
        if section == "HPI":
            doc.text(rng.choice(("Seen and examined. ", "No acute events overnight. ", "Feeling better today. ")))
            for kind in rng.sample(list(SENTENCES), rng.randint(2, 5)):
                SENTENCES[kind](doc, v, rng, ctx)
            doc.text("\n")
        else:
            WRITERS[section](doc, v, rng, ctx)


def _discharge(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    doc.text(rng.choice(("DISCHARGE SUMMARY\n", "Discharge Summary\n", "")))
    doc.text(f"Admission Date: {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2024\n")
    _header(doc, rng, "Assessment/Plan", rng.choice(("discharge diagnoses", "discharge diagnosis", "diagnoses")))
    for i, ent in enumerate(v.problems_distinct(rng.randint(1, 4), kind="disease"), 1):
        doc.say(f"{i}. {{}}\n", ent)
    _header(doc, rng, "HPI", rng.choice(("hospital course", "brief hospital course")))
    for kind in rng.choices(list(SENTENCES), k=rng.randint(4, 16 if long else 8)):
        SENTENCES[kind](doc, v, rng, ctx)
    if rng.random() < 0.5:
        doc.say("Underwent {} on hospital day 2 without complication. ", v.procedure())
    doc.text("\n")
    _header(doc, rng, "Medications", rng.choice(("discharge medications", "discharge meds", "medications")))
    WRITERS["Medications"](doc, v, rng, ctx)
    _header(doc, rng, "Assessment/Plan", rng.choice(("discharge instructions", "follow-up", "disposition")))
    for _ in range(rng.randint(1, 3)):
        SENTENCES["hypothetical"](doc, v, rng, ctx)
    doc.text("\n")


def _medlist(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    _header(doc, rng, "Medications")
    WRITERS["Medications"](doc, v, rng, ctx)
    if long:
        for _ in range(rng.randint(10, 20)):
            med_line(doc, v, rng, ctx, rng.choice(("- ", "")))
    if long or rng.random() < 0.5:
        _header(doc, rng, "Allergies")
        WRITERS["Allergies"](doc, v, rng, ctx)


def _narrative(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    WRITERS["HPI"](doc, v, rng, ctx)
    for kind in rng.choices(list(SENTENCES), k=rng.randint(3, 20 if long else 8)):
        SENTENCES[kind](doc, v, rng, ctx)
        if rng.random() < 0.2:
            doc.text("\n\n" if rng.random() < 0.5 else "\n")


def _triage(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    lead = rng.choice(("CC:", "Triage:", "Phone note:", ""))
    if lead == "CC:":
        doc.header("HPI", lead, inline=True)
    else:
        doc.text(lead + " " if lead else "")
    doc.ent(v.problem())
    doc.text(". ")
    for kind in rng.sample(("absent", "present", "possible", "hypothetical", "historical"), rng.randint(1, 3)):
        SENTENCES[kind](doc, v, rng, ctx)


def _radiology(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, long: bool) -> None:
    _header(doc, rng, "Imaging", rng.choice(("radiology", "imaging", "radiology results")))
    radiology_report(doc, v, rng, ctx)


_BUILDERS = {"hp": _hp, "progress": _progress, "discharge": _discharge, "medlist": _medlist,
             "narrative": _narrative, "triage": _triage, "radiology": _radiology}


def _note(seed: int, index: int, tail: tuple[str, ...]) -> dict[str, Any]:
    rng = random.Random(f"medui-notes:{seed}:{index}")  # string seeds are hashed stably across runs and platforms
    style = rng.choices(STYLES, weights=_STYLE_WEIGHTS)[0]
    long = rng.random() < 0.12
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    typo = rng.random() < 0.4
    doc = Doc(rng, newline, typo_rate=rng.uniform(0.005, 0.03) if typo else 0.0,
              entity_typo_rate=0.03 if typo else 0.0, upper=rng.random() < 0.03)
    female = rng.random() < 0.5
    ctx = Ctx(he="she" if female else "he", his="her" if female else "his", age=rng.randint(18, 94),
              sex="F" if female else "M")
    _BUILDERS[style](doc, Vocab(rng, tail), rng, ctx, long)
    if rng.random() < 0.12:
        doc.text(rng.choice(_UNICODE_BITS))
    text, entities = doc.record()
    return {"text": text, "entities": entities,
            "meta": {"generator": GENERATOR, "seed": seed, "index": index, "style": style, "long": long,
                     "newline": "crlf" if newline == "\r\n" else "lf", "typos": doc.typos,
                     "medications": ctx.med_rows}}


def generate(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` synthetic notes for ``seed``; the same (n, seed) always gives the same notes."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of notes must be a whole number of at least 1, got {n!r}")
    tail = long_tail_drugs()
    return [_note(seed, i, tail) for i in range(n)]


def write_jsonl(path: str | Path, n: int, seed: int) -> Path:
    """Write ``generate(n, seed)`` as JSONL (one note per line, UTF-8) and return the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / 'notes.jsonl'}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    records = generate(n, seed)
    try:
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def main_synth(n: int, seed: int, out: str | Path) -> Path:
    """CLI entry (``python -m medui notes synth --n N --seed S --out FILE.jsonl``): writes the notes, returns the file."""
    return write_jsonl(out, n, seed)
