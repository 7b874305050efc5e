"""The two user-facing failures of a training job. Both are ValueErrors, so the CLI prints them as one line."""

from __future__ import annotations


class SpecError(ValueError):
    """A job spec that cannot run: an unknown task or method, a bad number, a missing data file."""


class DatasetError(ValueError):
    """A dataset that cannot be trained on, with the row and the reason ("line 7: entity 12-40 runs past ...")."""
