"""Medication normalisation: a drug mention ("Lasix.", "metformin HCl") → generic name with DrugBank and MeSH ids.

Uses the offline dictionary of the PyPI package `drug-named-entity-recognition` (20 k drugs with brand names and
synonyms). The package is imported on first use because loading its dictionary takes about 3 s.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

PACKAGE = "drug-named-entity-recognition"

# Common clinical names the dictionary lacks as written ("APAP", "HCTZ" it already has).
_ALIASES = {
    "thiamine": "vitamin b1",
    "senna": "sennosides",
    "augmentin": "amoxicillin",  # amoxicillin-clavulanate: its first component, as for the hyphenated name
    "asa": "aspirin",
    "ntg": "nitroglycerin",
    "kcl": "potassium chloride",
    "mgso4": "magnesium sulfate",
    "mtx": "methotrexate",
    "inh": "isoniazid",
    "pcn": "penicillin",
}
# Fuzzy matches below this trigram Jaccard, or on short words, are wrong more often than right ("augmentin" →
# "vimentin" scores 0.44, "chest" → "ches…" 0.67; "metformn" → "metformin" 0.63).
_MIN_FUZZY_SIMILARITY = 0.6
_MIN_FUZZY_LENGTH = 6
_TOKEN = re.compile(r"[\w']+(?:-[\w']+)*")


@dataclass(frozen=True)
class Drug:
    """A normalised medication: `generic` is the dictionary's canonical name in lower case; `matched` is the part
    of the input text that was recognised."""

    generic: str
    drugbank_id: str | None
    mesh_id: str | None
    matched: str


def package_version() -> str:
    """The installed version of the drug dictionary package."""
    return importlib.metadata.version(PACKAGE)


def _find(tokens: list[str], fuzzy: bool) -> list[tuple[dict, int, int]]:
    from drug_named_entity_recognition import find_drugs

    # Never the package's network options (OMOP API, PubChem, structure download): MedUI runs offline.
    if not fuzzy:
        return find_drugs(tokens, is_ignore_case=True)
    # Fuzzy matching word by word: the package's fuzzy two-word branch raises UnboundLocalError (2.0.9).
    return [(data, i, i + 1) for i, token in enumerate(tokens)
            for data, _, _ in find_drugs([token], is_fuzzy_match=True, is_ignore_case=True)]


def _good_fuzzy(data: dict) -> bool:
    return (data.get("match_similarity", 0.0) >= _MIN_FUZZY_SIMILARITY
            and len(data.get("matching_string", "")) >= _MIN_FUZZY_LENGTH)


def normalise_drug(text: str) -> Drug | None:
    """The drug named in `text` (case-insensitive, punctuation-tolerant), or None when none is recognised.

    Exact dictionary matches win over fuzzy ones; among matches the longest span (e.g. "insulin glargine" over
    "insulin") and then the earliest wins."""
    hyphenated = _TOKEN.findall(text or "")
    split = [part for token in hyphenated for part in token.split("-")]
    # Whole hyphenated names first ("co-trimoxazole"), then their parts ("amoxicillin-clavulanate": its first
    # component), then fuzzy.
    for surface, fuzzy in ((hyphenated, False), (split, False), (split, True)):
        # One token per surface token ("potassium chloride" stays one: the dictionary looks tokens up whole).
        tokens = [_ALIASES.get(t.lower(), t) for t in surface]
        matches = [
            (data, start, end) for data, start, end in (_find(tokens, fuzzy) if tokens else [])
            if data.get("name") and (data.get("match_type") == "exact" or _good_fuzzy(data))
        ]
        if matches:
            data, start, end = min(matches, key=lambda m: (-(m[2] - m[1]), m[1]))
            return Drug(
                generic=str(data["name"]).lower(),
                drugbank_id=data.get("drugbank_id"),
                mesh_id=data.get("mesh_id"),
                matched=" ".join(surface[start:end]),
            )
    return None
