"""Other ner dataset formats -> the rows the JSONL reader produces: {"text", "entities": [{start, end, label}]}.

CoNLL BIO (.conll, .bio, .iob, .txt): one token per line, the tag in the last column, a blank line between
sentences, `-DOCSTART-` lines ignored. A sentence's text is its tokens joined by single spaces; spans are character
offsets into that text. An I- tag that does not continue an entity of its type starts one (IOB1 style) and is
reported; anything that is not O, B-TYPE or I-TYPE is refused with its line.

BRAT standoff (.zip of .txt + .ann pairs, unpacked through the upload guard): one row per .txt, spans are character
offsets into that file's text exactly as stored (newlines included). Only T (text-bound) lines are read; R, E, A, M,
N, * and # lines are ignored. A .txt without .ann is a document without entities; an .ann without its .txt, a T line
whose text differs from the .txt slice, or a malformed T line is refused, naming the file, line and T-id.

Discontinuous BRAT entities (`T1<TAB>LABEL 0 5;9 14<TAB>...`) are SPLIT into one entity per fragment, each reported.
Why not refuse: the model is a flat BIO tagger, which cannot express a discontinuous mention whatever we do; each
fragment is text the annotator did mark with that type, so tagging it is closer to the annotation than leaving it
"O" (teaching the model that the marked words are not entities), and refusing the document would lose all its other
entities (clinical corpora such as ShARe/CLEF have many discontinuous disorders). The cost -- one mention counted as
several -- is listed in the dataset report so it is not silent.

Each reader returns a Converted: items carry "line" (the sentence's first line, or the document's number) and
"where" (file and line, or file) for messages; rejected rows are {"row", "reason"} as settle_rejections expects.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medui.training.errors import DatasetError
from medui.uploads import UploadRejected, decode_text, extract_zip

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".txt")
BRAT_SUFFIXES = (".zip",)
FORMATS_HELP = ("ner datasets are JSONL (.jsonl: one {\"text\", \"entities\": [{\"start\", \"end\", \"label\"}]} "
                "object per line), CoNLL BIO (.conll or .txt: token and tag per line) or BRAT standoff "
                "(.zip of .txt + .ann files)")
MAX_NOTES = 100  # conversion notes kept in the report; the rest are counted

_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # as the JSONL reader: a bare entity type
_TAG_RE = re.compile(r"^([BI])-(.*)$")
_FRAGMENT_RE = re.compile(r"^(\d+) (\d+)$")
_IGNORED_ANN = ("R", "E", "A", "M", "N", "*", "#")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Converted:
    items: list[dict[str, Any]] = field(default_factory=list)  # {"text", "entities", "line", "where"}
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"row", "reason"}
    rows: int = 0  # sentences (CoNLL) or documents (BRAT) read, accepted or not
    notes: list[str] = field(default_factory=list)  # accepted but changed: IOB1 starts, split discontinuous spans

    def note(self, message: str) -> None:
        self.notes.append(message)

    def info(self, fmt: str) -> dict[str, Any]:
        kept = self.notes[:MAX_NOTES]
        if len(self.notes) > MAX_NOTES:
            kept = [*kept, f"... and {len(self.notes) - MAX_NOTES} more"]
        return {"format": fmt, "conversion_notes": kept}


def detect_format(path: Path) -> str:
    """'jsonl', 'conll' or 'brat', from the file's first bytes, then its extension."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    suffix = path.suffix.lower()
    if head.startswith(_ZIP_MAGIC):
        if suffix not in BRAT_SUFFIXES:
            raise DatasetError(f"{path.name}: this is a ZIP archive; name it .zip for BRAT standoff ({FORMATS_HELP})")
        return "brat"
    if suffix in BRAT_SUFFIXES:
        raise DatasetError(f"{path.name}: not a ZIP archive ({FORMATS_HELP})")
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CONLL_SUFFIXES:
        first = next((line.strip() for line in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
                      if line.strip()), "")
        return "jsonl" if first.startswith("{") else "conll"
    raise DatasetError(f"{path.name}: {FORMATS_HELP}")


def read_converted(path: Path, fmt: str) -> Converted:
    if fmt == "conll":
        return read_conll(path)
    if fmt == "brat":
        return read_brat(path)
    raise ValueError(f"no converter for {fmt!r}")


def _decode(data: bytes, name: str) -> str:
    try:
        return decode_text(data)
    except UploadRejected as exc:
        raise DatasetError(f"{name}: {exc}") from None


# --- CoNLL BIO -------------------------------------------------------------------------------------------------


def _conll_sentences(text: str) -> list[list[tuple[int, str]]]:
    """Sentences as [(line number, line)], split on blank lines; -DOCSTART- lines dropped."""
    sentences: list[list[tuple[int, str]]] = [[]]
    for line_no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            if sentences[-1]:
                sentences.append([])
            continue
        if stripped.split()[0] == "-DOCSTART-":
            if sentences[-1]:  # a document boundary also ends the sentence before it
                sentences.append([])
            continue
        sentences[-1].append((line_no, stripped))
    return [s for s in sentences if s]


def _conll_columns(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def read_conll(path: Path) -> Converted:
    out = Converted()
    text = _decode(path.read_bytes(), path.name)
    for sentence in _conll_sentences(text):
        out.rows += 1
        first_line = sentence[0][0]
        where = f"{path.name} line {first_line}"
        row, problem, notes = _conll_sentence(sentence, path.name)
        if problem:
            out.rejected.append({"row": first_line, "reason": problem})
            continue
        out.notes += notes
        out.items.append({**row, "line": first_line, "where": where})
    return out


def _conll_sentence(sentence: list[tuple[int, str]], name: str) -> tuple[dict[str, Any], str | None, list[str]]:
    tokens: list[str] = []
    entities: list[dict[str, Any]] = []
    notes: list[str] = []
    offset = 0
    open_entity: dict[str, Any] | None = None
    for line_no, line in sentence:
        columns = [c.strip() for c in _conll_columns(line)]
        if len(columns) < 2 or not columns[0] or not columns[-1]:
            return {}, f"{name} line {line_no}: expected a token and a tag separated by a tab or spaces", []
        token, tag = columns[0], columns[-1]
        start = offset + (1 if tokens else 0)
        end = start + len(token)
        tokens.append(token)
        offset = end
        if tag == "O":
            open_entity = None
            continue
        match = _TAG_RE.match(tag)
        if not match or not _LABEL_RE.match(match.group(2)):
            return {}, (f"{name} line {line_no}: unknown tag {tag!r}; use O, B-TYPE or I-TYPE with a bare "
                        "entity type such as B-PROBLEM"), []
        prefix, label = match.groups()
        if prefix == "I" and open_entity is not None and open_entity["label"] == label:
            open_entity["end"] = end
            continue
        if prefix == "I":
            before = "after O" if open_entity is None else f"after an entity of type {open_entity['label']}"
            notes.append(f"{name} line {line_no}: {tag} {before} starts a new entity (IOB1 style)")
        open_entity = {"start": start, "end": end, "label": label}
        entities.append(open_entity)
    return {"text": " ".join(tokens), "entities": entities}, None, notes


# --- BRAT standoff ---------------------------------------------------------------------------------------------


def _skipped(rel: Path) -> bool:
    """macOS archive litter: __MACOSX/ folders and ._ resource forks."""
    return any(part == "__MACOSX" or part.startswith("._") for part in rel.parts)


def read_brat(path: Path) -> Converted:
    out = Converted()
    with tempfile.TemporaryDirectory(prefix="medui-brat-") as tmp:
        root = Path(tmp).resolve()
        try:
            written = extract_zip(path.read_bytes(), root)
        except UploadRejected as exc:
            raise DatasetError(f"{path.name}: {exc}") from None
        docs: dict[str, dict[str, Path]] = {}
        for file in written:
            rel = file.relative_to(root)
            if _skipped(rel) or rel.suffix.lower() not in (".txt", ".ann"):
                continue  # annotation.conf, visual.conf, READMEs...
            docs.setdefault(rel.with_suffix("").as_posix(), {})[rel.suffix.lower()] = file
        for number, stem in enumerate(sorted(docs), 1):
            out.rows += 1
            pair = docs[stem]
            if ".txt" not in pair:
                out.rejected.append({"row": number, "reason": f"{stem}.ann: no {stem}.txt beside it in the archive"})
                continue
            text = _decode(pair[".txt"].read_bytes(), f"{stem}.txt")
            entities: list[dict[str, Any]] = []
            problem, notes = None, []
            if ".ann" in pair:
                ann = _decode(pair[".ann"].read_bytes(), f"{stem}.ann")
                entities, problem, notes = _brat_entities(ann, text, f"{stem}.ann")
            if problem:
                out.rejected.append({"row": number, "reason": problem})
                continue
            out.notes += notes
            out.items.append({"text": text, "entities": entities, "line": number, "where": f"{stem}.txt"})
    return out


def _brat_entities(ann: str, text: str, name: str) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    entities: list[dict[str, Any]] = []
    notes: list[str] = []
    for line_no, raw in enumerate(ann.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith(_IGNORED_ANN):
            continue
        here = f"{name} line {line_no}"
        if not line.startswith("T"):
            return [], f"{here}: not a BRAT annotation line (T, R, E, A, M, N, * or #)", []
        parts = line.split("\t", 2)
        tid = parts[0]
        if len(parts) != 3:
            return [], f"{here} ({tid}): expected ID<TAB>TYPE START END<TAB>TEXT", []
        label, _, spans = parts[1].partition(" ")
        if not _LABEL_RE.match(label):
            return [], (f"{here} ({tid}): type {label!r} must be a bare entity type (letters, digits, "
                        "underscores) such as PROBLEM"), []
        fragments = []
        for fragment in spans.split(";"):
            match = _FRAGMENT_RE.match(fragment.strip())
            if not match:
                return [], f"{here} ({tid}): offsets {spans!r} are not START END[;START END...]", []
            start, end = int(match.group(1)), int(match.group(2))
            if not start < end <= len(text):
                return [], (f"{here} ({tid}): span {start}-{end} is empty, reversed or past the end of the text "
                            f"({len(text)} characters)"), []
            fragments.append((start, end))
        # brat writes a discontinuous entity's text as its fragments joined by single spaces
        expected = " ".join(text[s:e] for s, e in fragments)
        if parts[2] != expected:
            return [], (f"{here} ({tid}): span text {parts[2][:60]!r} does not match the .txt, which has "
                        f"{expected[:60]!r} at {spans}"), []
        if len(fragments) > 1:
            notes.append(f"{here} ({tid}): discontinuous {label} {spans} split into {len(fragments)} entities")
        entities += [{"start": s, "end": e, "label": label} for s, e in fragments]
    return entities, None, notes
