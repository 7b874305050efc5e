"""A note under construction for the synthetic generator: text pieces plus gold entity spans by construction."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

_SLOT = re.compile(r"\{\}")
_WORD = re.compile(r"[A-Za-z]{5,}")


@dataclass(frozen=True)
class Ent:
    """One entity to place: its surface form, label and (for PROBLEM) assertion and historical flag."""

    surface: str
    label: str
    assertion: str | None = None
    historical: bool = False


def misspell(word: str, rng: random.Random) -> str:
    """A plausible typo: swapped, dropped or doubled letter (never the first letter, so it stays recognisable)."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.7:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


class Doc:
    """Appends text and entities; the newline style and typos are applied here so offsets stay exact."""

    def __init__(self, rng: random.Random, newline: str = "\n", typo_rate: float = 0.0,
                 entity_typo_rate: float = 0.0, upper: bool = False) -> None:
        self.rng, self.newline, self.upper = rng, newline, upper
        self.typo_rate, self.entity_typo_rate = typo_rate, entity_typo_rate
        self.parts: list[str] = []
        self.length = 0
        self.entities: list[dict[str, Any]] = []
        self.section: str | None = None
        self.typos = 0

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def text(self, text: str, typos: bool = True) -> None:
        """Free text: newlines become the note's newline style; long words get a typo at the note's rate."""
        if typos and self.typo_rate:
            text = _WORD.sub(self._maybe_typo, text)
        if self.upper:
            text = text.upper()
        self._append(text.replace("\n", self.newline))

    def _maybe_typo(self, match: re.Match) -> str:
        if self.rng.random() < self.typo_rate:
            self.typos += 1
            return misspell(match.group(0), self.rng)
        return match.group(0)

    def ent(self, ent: Ent) -> int:
        """Place an entity at the end of the text; returns its index in ``entities``."""
        surface = ent.surface.upper() if self.upper else ent.surface
        if len(surface) >= 6 and surface.isalpha() and self.rng.random() < self.entity_typo_rate:
            surface = misspell(surface, self.rng)
            self.typos += 1
        start = self.length
        self._append(surface)
        record: dict[str, Any] = {"start": start, "end": self.length, "label": ent.label, "section": self.section}
        if ent.label == "PROBLEM":
            record["assertion"] = ent.assertion or "present"
            record["historical"] = ent.historical
        self.entities.append(record)
        return len(self.entities) - 1

    def say(self, template: str, *ents: Ent) -> list[int]:
        """Write a template whose ``{}`` slots are filled, in order, by entities; returns their indices."""
        pieces = _SLOT.split(template)
        if len(pieces) != len(ents) + 1:
            raise ValueError(f"template has {len(pieces) - 1} slots for {len(ents)} entities: {template!r}")
        placed = []
        for piece, ent in zip(pieces, ents, strict=False):
            self.text(piece)
            placed.append(self.ent(ent))
        self.text(pieces[-1])
        return placed

    def header(self, section: str, surface: str, inline: bool) -> None:
        """A section header line; entities after it belong to ``section`` until the next header."""
        self.section = section
        self.text(surface + (" " if inline else "\n"), typos=False)

    def record(self) -> tuple[str, list[dict[str, Any]]]:
        text = "".join(self.parts)
        return text, self.entities
