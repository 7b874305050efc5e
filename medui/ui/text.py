"""Text that came from a user's file, made safe for Streamlit's markdown-rendering widgets."""

from __future__ import annotations

import re


def markdown_safe(text: str) -> str:
    """Escape every markdown and HTML markup character, so file names and values show as typed, never as markup."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", text)
