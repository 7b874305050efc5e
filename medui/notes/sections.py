"""Note sections from their headers: "HPI:", "PAST MEDICAL HISTORY", "A/P:", "FHx -", "**Meds**" → canonical names.

Header variants come from the lexicon (`SECTION_HEADERS`). The parsing is stricter than
`lexicon.section_for_header` because it must give offsets and must not read prose as a header: a header is a line
that starts with a capital letter (or has a colon), is alone on its line or is followed by ":" or a spaced dash,
so "A-fib noted" or "s/p CABG" never open a section while "A: AF" and "S:" (SOAP) do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medui.notes.lexicon import SECTION_HEADERS

_HEADER = re.compile(
    r"[ \t\u00a0]*[#*_>]*[ \t]*"  # leading indentation and Markdown emphasis
    r"(?P<name>[^\W\d_][\w /&\-]*?)"
    r"(?:[ \t]*\([^()\n]{1,30}\))?"  # "Past Medical History (PMH):"
    r"[ \t]*[*_]*[ \t]*"
    r"(?P<end>:|[ \t]+[-\u2013\u2014][ \t]|[-\u2013\u2014]?[ \t]*$)"
)

_QUALIFIER = re.compile(r"\s+(?:today|on admission|at admission|on discharge|at discharge|on arrival|at baseline)$")


@dataclass(frozen=True)
class Section:
    """A section named `name` spanning text[start:end], from its header line to the next header."""

    name: str
    start: int
    end: int


def _header(line: str) -> str | None:
    """The canonical section a line opens, or None."""
    match = _HEADER.match(line)
    if not match:
        return None
    words = match.group("name")
    key = " ".join(words.lower().split())
    # "Labs today", "Exam/nasal endoscopy", "Assessment and Recommendations": a known header, qualified
    candidates = (key, _QUALIFIER.sub("", key), re.split(r"/| and | & ", key)[0].strip())
    name = next((SECTION_HEADERS[c] for c in candidates if c in SECTION_HEADERS), None)
    if name is None:
        return None
    has_colon = match.group("end") == ":"
    if not has_colon and not words[0].isupper():
        return None  # a lower-case line without a colon is prose ("history of falls")
    if len(words.strip()) == 1 and not has_colon:
        return None  # single-letter SOAP headers only as "S:", "A:"
    return name


def find_sections(text: str) -> list[Section]:
    """Sections of `text` in order; text before the first header belongs to none. Offsets index `text` itself."""
    starts: list[tuple[int, str]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        name = _header(line.rstrip("\r\n"))
        if name is not None:
            starts.append((offset, name))
        offset += len(line)
    return [Section(name, start, starts[i + 1][0] if i + 1 < len(starts) else len(text))
            for i, (start, name) in enumerate(starts)]


def section_at(sections: list[Section], offset: int) -> str | None:
    """The name of the section containing character `offset`, or None."""
    for section in sections:
        if section.start <= offset < section.end:
            return section.name
    return None
