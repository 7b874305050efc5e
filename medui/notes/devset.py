"""The hand-written notes development set: inline markup <-> text with gold entity spans.

Markup (documented in tests/data/notes_dev/README.md):

- ``[surface]{LABEL}`` marks an entity; for PROBLEM ``[surface]{PROBLEM|assertion|hist|icd=CODE}`` where
  ``assertion`` is one of present/absent/possible/hypothetical/family (required), ``hist`` marks historical and
  ``icd=`` gives the gold ICD-10-CM code.
- ``{{Section}}`` (zero width) starts a canonical section (lexicon.SECTIONS) for the entities after it.
- ``\\[ \\] \\{ \\} \\\\`` write those characters literally. Everything else, CRLF and Unicode included, is text.

``parse(markup)`` gives ``{"id", "text", "entities": [{"start", "end", "text", "label", "assertion", "historical",
"section", "icd10"}]}`` with offsets into the un-marked text; ``render(text, entities)`` is its inverse.
A small hand-written parser: the format is ours, so no library parses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medui.notes.lexicon import SECTIONS

LABELS = ("PROBLEM", "MEDICATION", "DOSAGE", "ROUTE", "FREQUENCY", "TEST", "PROCEDURE")
ASSERTIONS = ("present", "absent", "possible", "hypothetical", "family")
DEV_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "notes_dev"
_SPECIAL = "[]{}\\"


class MarkupError(ValueError):
    """Malformed dev-set markup, with the line and column where it went wrong."""


def _where(markup: str, pos: int) -> str:
    line = markup.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (markup.rfind(chr(10), 0, pos) + 1) + 1}"


def _attributes(spec: str, where: str) -> dict[str, Any]:
    label, *attrs = spec.split("|")
    if label not in LABELS:
        raise MarkupError(f"{where}: unknown label {label!r} (use one of {', '.join(LABELS)})")
    out: dict[str, Any] = {"label": label, "assertion": None, "historical": None, "icd10": None}
    for attr in attrs:
        if label != "PROBLEM":
            raise MarkupError(f"{where}: only PROBLEM takes attributes, {label} got {attr!r}")
        if attr in ASSERTIONS:
            out["assertion"] = attr
        elif attr == "hist":
            out["historical"] = True
        elif attr.startswith("icd="):
            out["icd10"] = attr[4:]
        else:
            raise MarkupError(f"{where}: unknown attribute {attr!r} (assertion, hist or icd=CODE)")
    if label == "PROBLEM":
        if out["assertion"] is None:
            raise MarkupError(f"{where}: PROBLEM needs an assertion ({', '.join(ASSERTIONS)})")
        out["historical"] = bool(out["historical"])
    return out


def parse(markup: str, doc_id: str = "") -> dict[str, Any]:
    """Un-marked text and gold entities of one marked-up note."""
    text: list[str] = []
    entities: list[dict[str, Any]] = []
    section: str | None = None
    open_at: int | None = None  # offset in the text where the current [ started
    open_pos = 0
    length, i = 0, 0
    while i < len(markup):
        ch = markup[i]
        if ch == "\\":
            if i + 1 >= len(markup) or markup[i + 1] not in _SPECIAL:
                raise MarkupError(f"{_where(markup, i)}: a backslash must escape one of {_SPECIAL}")
            text.append(markup[i + 1])
            length, i = length + 1, i + 2
        elif markup.startswith("{{", i):
            end = markup.find("}}", i)
            if end < 0 or markup[i + 2:end] not in SECTIONS:
                raise MarkupError(f"{_where(markup, i)}: section marker must be {{{{one of {', '.join(SECTIONS)}}}}}")
            if open_at is not None:
                raise MarkupError(f"{_where(markup, i)}: section marker inside an entity")
            section, i = markup[i + 2:end], end + 2
        elif ch == "[":
            if open_at is not None:
                raise MarkupError(f"{_where(markup, i)}: nested [ (entities cannot nest)")
            open_at, open_pos, i = length, i, i + 1
        elif ch == "]":
            if open_at is None or not markup.startswith("]{", i):
                raise MarkupError(f"{_where(markup, i)}: ] must close an entity and be followed by {{LABEL}}")
            end = markup.find("}", i)
            if end < 0:
                raise MarkupError(f"{_where(markup, i)}: unterminated {{LABEL}}")
            if open_at == length:
                raise MarkupError(f"{_where(markup, open_pos)}: empty entity")
            surface = "".join(text)[open_at:]
            if surface != surface.strip():
                raise MarkupError(f"{_where(markup, open_pos)}: entity {surface!r} starts or ends with whitespace")
            entities.append({"start": open_at, "end": length, "text": surface,
                             **_attributes(markup[i + 2:end], _where(markup, i)), "section": section})
            open_at, i = None, end + 1
        elif ch in "{}":
            raise MarkupError(f"{_where(markup, i)}: stray {ch!r} (write \\{ch} for a literal one)")
        else:
            text.append(ch)
            length, i = length + 1, i + 1
    if open_at is not None:
        raise MarkupError(f"{_where(markup, open_pos)}: [ never closed")
    return {"id": doc_id, "text": "".join(text), "entities": entities}


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def render(text: str, entities: list[dict[str, Any]]) -> str:
    """Markup for a text and non-overlapping entities (the inverse of ``parse``)."""
    out, last, section = [], 0, None
    for ent in sorted(entities, key=lambda e: e["start"]):
        if ent["start"] < last:
            raise ValueError(f"entities overlap at {ent['start']}")
        out.append(_escape(text[last:ent["start"]]))
        if ent.get("section") != section:
            if ent.get("section") is None:
                raise ValueError(f"entity at {ent['start']} has no section after one in {section!r}")
            section = ent["section"]
            out.append("{{" + section + "}}")
        spec = [ent["label"]]
        if ent["label"] == "PROBLEM":
            spec.append(ent["assertion"])
            if ent.get("historical"):
                spec.append("hist")
            if ent.get("icd10"):
                spec.append("icd=" + ent["icd10"])
        out.append("[" + _escape(text[ent["start"]:ent["end"]]) + "]{" + "|".join(spec) + "}")
        last = ent["end"]
    out.append(_escape(text[last:]))
    return "".join(out)


def load_devset(folder: str | Path = DEV_DIR) -> list[dict[str, Any]]:
    """Every ``*.txt`` note in the dev-set folder, parsed, in file-name order (bytes kept: CRLF stays CRLF)."""
    notes = []
    for path in sorted(Path(folder).glob("*.txt")):
        markup = path.read_bytes().decode("utf-8")
        try:
            notes.append(parse(markup, path.stem))
        except MarkupError as exc:
            raise MarkupError(f"{path.name}: {exc}") from None
    return notes
