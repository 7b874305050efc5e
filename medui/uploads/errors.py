"""The rejection every upload check raises, and the helpers that keep its messages short and safe to show."""

from __future__ import annotations

MB = 1024**2


class UploadRejected(ValueError):
    """Message is short, specific, and safe to show to a user as-is (no traceback, never echoes file content)."""


def mb(n: int) -> str:
    """A byte count as human-readable megabytes, e.g. '512 MB' or '1.5 MB'."""
    value = n / MB
    if value >= 10:
        return f"{value:,.0f} MB"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} MB" if text != "0" else "<0.01 MB"


def with_article(noun: str) -> str:
    """'a DICOM file', 'an EDF recording'."""
    return ("an " if noun[:1] in "AEIOaeio" else "a ") + noun


def shown(name: str, limit: int = 80) -> str:
    """A name from inside an upload made fit for a message: printable characters only, at most `limit` long."""
    clean = "".join(c if c.isprintable() else "?" for c in name)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
