"""Clinical note extraction: the production `notes-ner` token classifier over overlapping windows, then the rules.

`extract(text)` gives one JSON-ready dict per note (entities with section, assertion and codes; medication rows;
model and vocabulary versions; `chars_total`/`chars_processed`). `iter_extract`/`extract_many` do many notes
with length-sorted dynamic batching: every note is cut into windows of the model's length (overlapping by
`OVERLAP` tokens), all windows of a chunk of notes are sorted by length and run in padded batches under a token
budget, and each token keeps the tag from the window where it sits farthest from an edge (most context), so the
merge loses and duplicates nothing. Offsets come from the fast tokenizer's offset mapping on the original string,
so `text[start:end] == entity["text"]` for any input.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MODEL_NAME = "notes-ner"
MAX_CHARS = 5 * 1024 * 1024  # the upload limit for a text note (medui.uploads): longer is refused, not truncated
# Tokens shared by neighbouring windows (at most a quarter of the window: 15 for the shipped 64-token model); each
# side keeps half, so a token near a window's edge is always tagged from the window where it has more context.
OVERLAP = 32
TOKEN_BUDGET = 8192  # padded tokens per forward pass: bounds activation memory whatever the batch
CHUNK_CHARS = 50_000  # notes are gathered into chunks of about this much text before batching (memory, progress)
LABELS = ("PROBLEM", "MEDICATION", "DOSAGE", "ROUTE", "FREQUENCY", "TEST", "PROCEDURE")

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], NerModel] = {}


class NotesError(ValueError):
    """A note that cannot be processed, with a one-line reason."""


@dataclass(frozen=True)
class NerModel:
    """A loaded token classifier: adapter merged, eval mode, with its tokenizer and tag names."""

    name: str
    version: str
    model: nn.Module
    tokenizer: Any
    tags: tuple[str, ...]  # id -> "O" / "B-LABEL" / "I-LABEL"
    window: int  # tokens per forward pass, special tokens included

    @property
    def info(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def load_model(version: str | int | None = None) -> NerModel:
    """The production `notes-ner` (or a given version), loaded once per process and version."""
    import json

    from medui.registry import get_version
    from medui.training import load_for_inference
    from medui.training.serving import load_tokenizer

    mv = get_version(MODEL_NAME, version)  # RegistryError: no such model or no production version
    key = (mv.name, mv.version)
    with _LOCK:
        if key not in _CACHE:
            model, _labels = load_for_inference(mv, merge=True)  # verifies the files' digests first
            arch = json.loads((mv.directory / "architecture.json").read_text(encoding="utf-8"))["arch"]
            id2label = model.config.id2label
            tags = tuple(id2label[i] for i in range(len(id2label)))
            tokenizer = load_tokenizer(mv)
            tokenizer.model_max_length = MAX_CHARS  # notes are windowed here: no "sequence too long" warning
            _CACHE[key] = NerModel(mv.name, mv.version, model, tokenizer, tags, int(arch.get("max_length", 128)))
        return _CACHE[key]


def check_text(text: Any) -> str | None:
    """Why a note cannot be processed, or None."""
    if not isinstance(text, str):
        return f"a note must be text, got {type(text).__name__}"
    if not text.strip():
        return "the note is empty"
    if len(text) > MAX_CHARS:
        return f"the note has {len(text):,} characters; the limit is {MAX_CHARS:,} (split it into several notes)"
    return None


def windows(n_tokens: int, size: int, overlap: int = OVERLAP) -> list[tuple[int, int, int, int]]:
    """(start, end, keep_from, keep_to) token ranges covering 0..n_tokens; the keep ranges tile it exactly once."""
    if n_tokens <= size:
        return [(0, n_tokens, 0, n_tokens)]
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    step = size - overlap
    starts = list(range(0, n_tokens - size, step)) + [n_tokens - size]
    out = []
    for k, start in enumerate(starts):
        end = start + size
        keep_from = 0 if k == 0 else out[-1][3]
        # The overlap with the next window is split at its middle: each token goes to the window it is deeper in.
        keep_to = n_tokens if k == len(starts) - 1 else (starts[k + 1] + end) // 2
        out.append((start, end, keep_from, keep_to))
    return out


@dataclass
class _Doc:
    text: str
    offsets: list[tuple[int, int]]
    words: list[int | None]
    tags: list[int]


def _encode(ner: NerModel, texts: list[str]) -> tuple[list[_Doc], list[list[int]]]:
    enc = ner.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
                        return_token_type_ids=False)
    return [_Doc(text, [tuple(o) for o in enc["offset_mapping"][i]], enc.word_ids(i), [-1] * len(enc["input_ids"][i]))
            for i, text in enumerate(texts)], enc["input_ids"]


@torch.inference_mode()
def _tag(ner: NerModel, docs: list[_Doc], ids: list[list[int]]) -> None:
    """Fill each doc's token tags from windowed, length-sorted, padded batches."""
    tok = ner.tokenizer
    size = ner.window - 2  # [CLS] ... [SEP]
    overlap = min(OVERLAP, size // 4)  # small windows (tests) still advance
    jobs = [(d, w) for d, doc in enumerate(docs) for w in windows(len(doc.tags), size, overlap)]
    jobs.sort(key=lambda job: (job[1][1] - job[1][0], job[0], job[1][0]), reverse=True)
    i = 0
    while i < len(jobs):
        longest = jobs[i][1][1] - jobs[i][1][0] + 2
        batch = jobs[i:i + max(1, TOKEN_BUDGET // longest)]
        i += len(batch)
        input_ids = torch.full((len(batch), longest), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, (d, (start, end, _, _)) in enumerate(batch):
            piece = [tok.cls_token_id, *ids[d][start:end], tok.sep_token_id]
            input_ids[row, :len(piece)] = torch.tensor(piece)
            mask[row, :len(piece)] = 1
        best = ner.model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1).tolist()
        for row, (d, (start, _end, keep_from, keep_to)) in enumerate(batch):
            docs[d].tags[keep_from:keep_to] = best[row][1 + keep_from - start:1 + keep_to - start]


def _spans(doc: _Doc, tags: tuple[str, ...]) -> list[dict[str, Any]]:
    """Word-level BIO decoding: a word takes its first sub-word's tag, so spans never split a word."""
    spans: list[dict[str, Any]] = []
    prev_word, open_label = None, None
    for t, word in enumerate(doc.words):
        if word is not None and word == prev_word:  # a later sub-word of the same word: follows its first piece
            if open_label:
                spans[-1]["end"] = doc.offsets[t][1]
            continue
        prev_word = word
        tag = tags[doc.tags[t]]
        if tag == "O":
            open_label = None
            continue
        prefix, label = tag.split("-", 1)
        if prefix == "I" and open_label == label:
            spans[-1]["end"] = doc.offsets[t][1]
        else:
            spans.append({"start": doc.offsets[t][0], "end": doc.offsets[t][1], "label": label})
            open_label = label
    for span in spans:
        span["text"] = doc.text[span["start"]:span["end"]]
    return spans


# Function words a span may not start or end with: the model's sloppy edges ("afib on", "septic shock from").
# FREQUENCY and ROUTE keep a leading word ("at bedtime", "as needed", "by mouth", "in the morning").
_EDGE_WORDS = frozenset("a an and as at by for from in of on or per the to with".split())
_KEEP_LEADING = frozenset({"FREQUENCY", "ROUTE"})
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten half quarter single double".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def tidy(text: str, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules over the model's spans: join same-label pieces split by spaces ("Metoprolol" "succinate"), trim edge
    function words, drop spans without two letters or digits, and DOSAGE spans without a number."""
    joined: list[dict[str, Any]] = []
    for span in spans:
        prev = joined[-1] if joined else None
        if prev and prev["label"] == span["label"] and text[prev["end"]:span["start"]].strip(" \t") == "" \
                and "\n" not in text[prev["end"]:span["start"]]:
            prev["end"] = span["end"]
        else:
            joined.append(dict(span))
    out = []
    for span in joined:
        words = list(_WORD.finditer(text, span["start"], span["end"]))
        start, end = span["start"], span["end"]
        while words and words[-1].group().lower() in _EDGE_WORDS:
            words.pop()
            end = words[-1].end() if words else start
        while words and span["label"] not in _KEEP_LEADING and words[0].group().lower() in _EDGE_WORDS:
            words.pop(0)
            start = words[0].start() if words else end
        if sum(len(w.group()) for w in words) < 2:
            continue
        if span["label"] == "DOSAGE" and not any(c.isdigit() for c in text[start:end]) \
                and not any(w.group().lower() in _NUMBER_WORDS for w in words):
            continue
        out.append({"start": start, "end": end, "label": span["label"], "text": text[start:end]})
    return out


def reconcile(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dictionary evidence over the model's label: a span whose whole text names an entry of exactly one curated
    kind (problem, test, procedure, medication: `medui.notes.lexicon`) takes that kind's label ("CXR" tagged as a
    problem is a test), and a MEDICATION that no drug dictionary entry matches, exactly or by the dictionary's own
    fuzzy match, is dropped (foods in an allergy list, drug classes). Both rules came from
    reading the development set's errors (README, Clinical notes: how the figures were reached)."""
    from medui.notes import lexicon
    from medui.notes.drugs import normalise_drug

    lookups = {"PROBLEM": lexicon.problem_for, "TEST": lexicon.test_for, "PROCEDURE": lexicon.procedure_for,
               "MEDICATION": lexicon.medication_for}
    out = []
    for span in spans:
        label = span["label"]
        if label in lookups:
            kinds = [kind for kind, lookup in lookups.items() if lookup(span["text"])]
            label = kinds[0] if len(kinds) == 1 else label
        if label == "MEDICATION" and not (lexicon.medication_for(span["text"]) or normalise_drug(span["text"])):
            continue
        out.append({**span, "label": label})
    return out


def _annotate(text: str, spans: list[dict[str, Any]], k: int = 5) -> tuple[list[dict[str, Any]], list[dict]]:
    """The rule layer: section; assertion for problems and medications ("not on aspirin"); ICD-10-CM candidates
    for problems; DrugBank/MeSH codes and medication rows (drug with its dose, route and frequency)."""
    from medui.notes.assertion import assert_entity
    from medui.notes.coding import icd10_candidates
    from medui.notes.medications import link_medications
    from medui.notes.sections import find_sections, section_at

    sections = find_sections(text)
    entities = []
    for span in spans:
        section = section_at(sections, span["start"])
        entity = {"start": span["start"], "end": span["end"], "text": span["text"], "label": span["label"],
                  "assertion": None, "historical": None, "section": section, "codes": []}
        if span["label"] in ("PROBLEM", "MEDICATION"):
            found = assert_entity(text, span["start"], span["end"], section)
            entity["assertion"], entity["historical"] = found.value, found.historical
        if span["label"] == "PROBLEM":
            entity["codes"] = [_code(c) for c in icd10_candidates(span["text"], k)]
        entities.append(entity)
    rows = link_medications(text, entities)  # normalises each drug once; its codes go on the entity too
    for row in rows:
        row.medication["codes"] = _drug_codes(row.code) if row.code else []
    return entities, [row.as_dict() for row in rows]


def _code(code: Any) -> dict[str, Any]:
    return {"system": code.system, "code": code.code, "display": code.display, "score": round(float(code.score), 4)}


def _drug_codes(drug: Any) -> list[dict[str, Any]]:
    """DrugBank then MeSH ids of a normalised drug; display is its generic name (a dictionary hit, so score 1)."""
    ids = (("DrugBank", drug.drugbank_id), ("MeSH", drug.mesh_id))
    return [{"system": system, "code": code, "display": drug.generic, "score": 1.0} for system, code in ids if code]


def _result(doc: _Doc, ner: NerModel, vocabularies: dict[str, str], source: str | None) -> dict[str, Any]:
    entities, medications = _annotate(doc.text, reconcile(tidy(doc.text, _spans(doc, ner.tags))))
    untagged = [t for t, tag in enumerate(doc.tags) if tag < 0]  # none: the windows' keep ranges tile the note
    processed = doc.offsets[untagged[0]][0] if untagged else len(doc.text)
    return {"source": source, "entities": entities, "medications": medications, "model": ner.info,
            "vocabularies": vocabularies, "chars_total": len(doc.text), "chars_processed": processed}


def ner_spans(texts: list[str], *, model: NerModel | None = None) -> list[list[dict[str, Any]]]:
    """The model's entity spans alone ({"start", "end", "label", "text"}), without the rule layer."""
    ner = model or load_model()
    for n, text in enumerate(texts):
        problem = check_text(text)
        if problem:
            raise NotesError(f"note {n + 1}: {problem}")
    docs, ids = _encode(ner, texts)
    _tag(ner, docs, ids)
    return [_spans(doc, ner.tags) for doc in docs]


def iter_extract(texts: Iterable[str], *, model: NerModel | None = None, sources: Iterable[str | None] | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """One result per note, in input order, streamed chunk by chunk (memory bounded by CHUNK_CHARS)."""
    from medui.notes.coding import vocabulary_versions

    ner = model or load_model()
    vocabularies = vocabulary_versions()
    source_iter = iter(sources) if sources is not None else None
    chunk: list[tuple[str, str | None]] = []
    size, done = 0, 0

    def flush() -> Iterator[dict[str, Any]]:
        docs, ids = _encode(ner, [text for text, _ in chunk])
        _tag(ner, docs, ids)
        for doc, (_, source) in zip(docs, chunk):
            yield _result(doc, ner, vocabularies, source)

    for n, text in enumerate(texts):
        problem = check_text(text)
        if problem:
            raise NotesError(f"note {n + 1}: {problem}")
        chunk.append((text, next(source_iter) if source_iter else None))
        size += len(text)
        if size >= CHUNK_CHARS:
            yield from flush()
            done += len(chunk)
            chunk, size = [], 0
            if progress:
                progress(done)
    if chunk:
        yield from flush()
        if progress:
            progress(done + len(chunk))


def extract_many(texts: Iterable[str], *, model: NerModel | None = None,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """`iter_extract` as a list; `progress(notes_done)` is called after each chunk."""
    return list(iter_extract(texts, model=model, progress=progress))


def extract(text: str, *, model: NerModel | None = None, source: str | None = None) -> dict[str, Any]:
    """Entities, assertions, codes and medication rows of one note; NotesError for an unusable note."""
    problem = check_text(text)
    if problem:
        raise NotesError(problem)
    return next(iter_extract([text], model=model, sources=[source]))
