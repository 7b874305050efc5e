"""What every risk calculator shares: declared input fields with validated ranges, and one way to run it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class RiskInputError(ValueError):
    """A missing, mistyped or out-of-range input; the message names the field and, for ranges, the range."""


@dataclass(frozen=True)
class Field:
    """One input: `kind` is "number", "bool" or "choice"; numbers carry their validated range and unit."""

    name: str
    label: str
    kind: str = "number"
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    help: str = ""

    def parse(self, raw: Any, score: str) -> Any:
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            raise RiskInputError(f"{self.name} must be true or false for {score}, got {raw!r}")
        if self.kind == "choice":
            if raw in self.choices:
                return raw
            raise RiskInputError(f"{self.name} must be one of {', '.join(self.choices)} for {score}, got {raw!r}")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise RiskInputError(f"{self.name} must be a number for {score}, got {raw!r}")
        if (self.low is not None and raw < self.low) or (self.high is not None and raw > self.high):
            unit = f" {self.unit}" if self.unit else ""
            raise RiskInputError(f"{self.name} {raw:g}{unit} is outside the validated range "
                                 f"{self.low:g}–{self.high:g}{unit} for {score}")
        return raw


@dataclass(frozen=True)
class Calculator:
    """A published score: its inputs, its equation (`compute` gets validated inputs) and where it comes from."""

    name: str
    title: str
    citation: str
    fields: tuple[Field, ...]
    compute: Callable[[dict[str, Any]], dict[str, Any]]
    outputs: tuple[str, ...] = field(default_factory=tuple)

    def validate(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(inputs, Mapping):
            raise RiskInputError(f"inputs for {self.name} must be a JSON object")
        missing = [f.name for f in self.fields if f.name not in inputs or inputs[f.name] is None]
        if missing:
            raise RiskInputError(f"missing input for {self.name}: {', '.join(missing)}")
        return {f.name: f.parse(inputs[f.name], self.name) for f in self.fields}

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate, compute, and return the outputs plus `score`, the validated `inputs` and the `citation`."""
        clean = self.validate(inputs)
        return {**self.compute(clean), "score": self.name, "inputs": clean, "citation": self.citation}


CALCULATORS: dict[str, Calculator] = {}


def register(calculator: Calculator) -> Calculator:
    if calculator.name in CALCULATORS:
        raise ValueError(f"calculator {calculator.name} is registered twice")
    CALCULATORS[calculator.name] = calculator
    return calculator
