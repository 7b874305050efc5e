"""Assertion of a problem mention: present, absent, possible, hypothetical or family, and whether it is historical.

A ConText-style algorithm (Harkema et al. 2009) over the lexicon's cue phrases (`lexicon.CUES`). Hand-written
because no maintained ConText/NegEx implementation works here without spaCy: medspaCy, negspacy and cycontext
are spaCy components (medspaCy 1.3.1 pins spaCy < 3.8, whose thinc fails beside numpy 2), and the spaCy-free
packages (pyConTextNLP 0.7, negex 0.0.0.3, pynegex 0.0.3.dev0) are unmaintained pre-releases.

- A pre-cue ("denies", "possible", "hx of", "mother", "go to the ED if") scopes rightwards over the entity, a
  post-cue ("was ruled out", "is suspected", "develops") leftwards, unless a terminator ("but", "however", ".",
  ";", a line break) lies between them. Words between cue and entity are limited (`MAX_GAP_WORDS`) except that
  list separators (",", "or", "and", bullets) restart the count, so "denies fever, chills or cough" covers every
  item. Uncertainty and hypothetical post-cues reach only across plain words: in "sepsis from pneumonia, likely
  MRSA" the "likely" is MRSA's. A relative reaches a list only as its label ("Mother: HTN, DM").
- The longest cue at a position wins ("no history of" over "history of"); pseudo-negations ("no change", "not
  ruled out") only block the shorter cues inside them.
- Several cues: absent beats hypothetical beats family beats possible ("no family history of X" is absent).
- The section informs: under Family history a problem is `family` unless negated; under PMH, PSH or Allergies
  it is historical. Historical applies only to the patient's own present or possible problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from medui.notes.lexicon import CUES

VALUES = ("present", "absent", "possible", "hypothetical", "family")
MAX_GAP_WORDS = 5  # words between a cue (or the last list separator) and the entity, as in NegEx's window
_WINDOW = 300  # characters searched either side of the entity for cues
# "Parents to seek care for X" is an instruction (hypothetical), "no family history of X" a negation.
_PRECEDENCE = {"absent": 0, "hypothetical": 1, "family": 2, "possible": 3}
_HISTORICAL_SECTIONS = {"PMH", "PSH", "Allergies"}  # an allergy's reaction happened before
_HISTORICAL_VALUES = {"present", "possible"}  # a denied, hypothetical or relative's problem is no past of the patient's
# Pre- and post-cue lists of the lexicon → the value they assert (None: historical only).
_PRE = {"negation_pre": "absent", "possible_pre": "possible", "hypothetical_pre": "hypothetical",
        "family": "family", "historical": None}
_POST = {"negation_post": "absent", "possible_post": "possible", "hypothetical_post": "hypothetical"}
# A relative after the problem only with a preposition: "breast cancer in her mother", not "COPD, lives with son".
_FAMILY_POST = re.compile(r"\s*(?:in|of)\s+(?:(?:his|her|their|the|patient's|pt's)\s+)?(?:{})\b")
_LIST_SEPARATOR = re.compile(r",|/|\bor\b|\band\b|\bnor\b|\n[ \t]*(?:[-*\u2022]|\d+[.)])[ \t]*", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:['/-][^\W_]+)*")
# Cues the lexicon lacks (to be moved there): instructions and counselling are hypothetical ("go to the ED if",
# "call L&D for", "DVT prophylaxis", "fall risk"), workup wording is possible ("consider", "to exclude").
_EXTRA_CUES = {
    "hypothetical_pre": ("if", "risks including", "risks of", "discussed risks", "warning signs",
                         "anticipatory guidance", "counseled on", "counselled on"),
    "hypothetical_post": ("prophylaxis", "ppx", "precautions", "risk"),
    "possible_pre": ("consider", "suspicion for", "suspicion of", "to exclude", "exclude", "probability of",
                     "unclear if", "unclear whether"),
    "possible_post": ("considered", "less likely"),
    "terminators": ("caused by", "provoked by", "triggered by", "in the setting of", "given"),
}
# "call/return/go to the ED/seek care/use … for|if": an instruction naming what to act on.
_INSTRUCTION = (r"(?<!\w)(?:call|return|come\s+back|go\s+to|seek|use)(?:\W+\w+){0,4}?\W+(?:for|if)(?!\w)")
# A relative who brings or accompanies the patient is not the one with the problem: "brought by mom for".
_AGENT = re.compile(r"\bby\s+(?:(?:his|her|their|the)\s+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Assertion:
    """`value` is one of VALUES; `cue` is the text (or "section: NAME") that decided it, None when present
    without a cue."""

    value: str
    historical: bool
    cue: str | None


@dataclass(frozen=True)
class _Cue:
    start: int
    end: int
    kind: str  # a CUES key


def _pattern(phrase: str) -> str:
    body = re.escape(phrase).replace(r"\ ", r"\s+")
    left = r"(?<![\w])" if phrase[0].isalnum() else ""
    right = r"(?![\w])" if phrase[-1].isalnum() else ""
    return left + body + right


@cache
def _cue_regex(side: str) -> tuple[re.Pattern, list[str]]:
    """For side "pre" or "post": one alternation of that side's cue phrases and the pseudo-negations, longest
    first, one named group each; and each group's category."""
    phrases: dict[str, str] = {}
    for kind in [*(_PRE if side == "pre" else _POST), "pseudo_negation"]:
        for phrase in (*CUES[kind], *_EXTRA_CUES.get(kind, ())):
            if phrase == "-":
                continue  # a bullet or hyphen far more often than a negation; "(-)" stays
            phrases.setdefault(phrase.lower(), kind)  # a phrase that is both a cue and a pseudo-negation: cue
    ordered = [(_pattern(p), kind) for p, kind in sorted(phrases.items(), key=lambda kv: -len(kv[0]))]
    if side == "pre":
        ordered.insert(0, (_INSTRUCTION, "hypothetical_pre"))
    regex = re.compile("|".join(f"(?P<c{i}>{p})" for i, (p, _) in enumerate(ordered)), re.IGNORECASE)
    return regex, [kind for _, kind in ordered]


@cache
def _terminator_regex() -> re.Pattern:
    parts = []
    for phrase in (*CUES["terminators"], *_EXTRA_CUES["terminators"]):
        if phrase == ".":
            parts.append(r"\.(?=\s|$)")  # a sentence end, not "p.o." or "0.5"
        elif phrase == "\n":
            parts.append(r"\n(?![ \t]*(?:[-*\u2022]|\d+[.)])[ \t])")  # a line break that does not start a bullet
        else:
            parts.append(_pattern(phrase))
    return re.compile("|".join(parts), re.IGNORECASE)


@cache
def _family_post_regex() -> re.Pattern:
    relatives = sorted((p for p in CUES["family"] if " of" not in p and "family" not in p), key=len, reverse=True)
    return re.compile(_FAMILY_POST.pattern.format("|".join(map(re.escape, relatives))), re.IGNORECASE)


def _cues(window: str, side: str) -> list[_Cue]:
    regex, kinds = _cue_regex(side)
    found = []
    for match in regex.finditer(window):
        index = int(match.lastgroup[1:])
        found.append(_Cue(match.start(), match.end(), kinds[index]))
    return found


def _in_scope(gap: str, family: bool = False, tight: bool = False) -> bool:
    """Whether a cue reaches across `gap` (the text between cue and entity). A `tight` cue reaches only
    across plain words ("pneumonia is suspected", not "septic shock from pneumonia, likely MRSA")."""
    if tight and not re.fullmatch(r"[\w' \t]*", gap):
        return False
    labelled = re.match(r"[ \t]*[:\-\u2013\u2014]\s*", gap)  # "Denies: fever", "Mother - breast cancer"
    if labelled:
        gap = gap[labelled.end():]
    elif family:
        # A relative reaches a list only as its label ("Mother: HTN, DM"): "Lives with son, has COPD" is his own.
        gap = re.sub(r"^\s*(?:with|w/)\s+", " ", gap)
        if _LIST_SEPARATOR.search(gap):
            return False
    if _terminator_regex().search(gap):
        return False
    return all(len(_WORD.findall(part)) <= MAX_GAP_WORDS for part in _LIST_SEPARATOR.split(gap))


def assert_entity(text: str, start: int, end: int, section: str | None = None) -> Assertion:
    """The assertion of the problem at text[start:end], given the section it lies in (a canonical name)."""
    if not 0 <= start < end <= len(text):
        raise ValueError(f"entity span {start}:{end} is outside the text (length {len(text)})")
    left_from = max(0, start - _WINDOW)
    before, after = text[left_from:start], text[end:end + _WINDOW]
    hits: list[tuple[str | None, str]] = []  # (value or None for historical-only, cue text)
    for cue in _cues(before, "pre"):
        if cue.kind == "family" and _AGENT.search(before, 0, cue.start):
            continue
        if cue.kind in _PRE and _in_scope(before[cue.end:], family=cue.kind == "family"):
            hits.append((_PRE[cue.kind], before[cue.start:cue.end]))
    for cue in _cues(after, "post"):
        if cue.kind in _POST and _in_scope(after[:cue.start], tight=cue.kind != "negation_post"):
            hits.append((_POST[cue.kind], after[cue.start:cue.end]))
    family = _family_post_regex().match(after)
    if family:
        hits.append(("family", family.group(0).strip()))
    historical = any(value is None for value, _ in hits) or section in _HISTORICAL_SECTIONS
    valued = sorted((h for h in hits if h[0] is not None), key=lambda h: _PRECEDENCE[h[0]])
    if valued and (valued[0][0] == "absent" or section != "Family history"):
        value, cue = valued[0]
    elif section == "Family history":
        value, cue = "family", "section: Family history"
    else:
        value, cue = "present", next((cue for value, cue in hits if value is None), None)
    return Assertion(value, historical and value in _HISTORICAL_VALUES, cue)
