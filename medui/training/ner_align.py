"""Character spans -> per-token BIO tags through a fast tokenizer's offset mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def bio_labels(offsets: Sequence[tuple[int, int]],
               entities: list[dict[str, Any]]) -> tuple[list[str | None], list[str]]:
    """One tag per token (None for special tokens, which the loss ignores) and the entities that did not fit.

    Every sub-word of an entity is tagged (B on the first, I after), so entity-level scoring on tokens
    counts each entity once. A span that starts or ends inside a token is widened to whole tokens and
    reported; a span with no token left (cut by truncation) is dropped and reported.
    """
    tags: list[str | None] = [None if start == end else "O" for start, end in offsets]
    issues = []
    for entity in entities:
        start, end, label = entity["start"], entity["end"], entity["label"]
        hit = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
        if not hit:
            issues.append(f"entity {start}-{end} ({label}) has no token after truncation to "
                          f"{len(offsets)} tokens; dropped")
            continue
        if any(tags[i] != "O" for i in hit):
            issues.append(f"entity {start}-{end} ({label}) shares a token with the entity before it; dropped")
            continue
        first, last = offsets[hit[0]][0], offsets[hit[-1]][1]
        if (first, last) != (start, end):
            issues.append(f"entity {start}-{end} ({label}) does not fall on token boundaries; "
                          f"tagged as {first}-{last}")
        for j, i in enumerate(hit):
            tags[i] = f"{'B' if j == 0 else 'I'}-{label}"
    return tags, issues
