"""Risk: validated clinical calculators (exact published equations) and a learned, calibrated risk model."""

from __future__ import annotations

from typing import Any

from medui.risk import chads, findrisc, hasbled, pce, prevent  # noqa: F401  (each registers its calculator)
from medui.risk.base import CALCULATORS, Calculator, Field, RiskInputError

__all__ = ["CALCULATORS", "Calculator", "Field", "RiskInputError", "calculate"]


def calculate(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run one calculator by name on a dict of inputs (see each calculator's fields)."""
    if name not in CALCULATORS:
        raise RiskInputError(f"unknown score {name!r}; available: {', '.join(sorted(CALCULATORS))}")
    return CALCULATORS[name].run(inputs)
