"""The learned risk model: a small calibrated MLP with per-feature attributions, loaded only through the registry.

Pipeline, identical in training (`medui.risk.train`) and here:
  form inputs -> checks (type, plausible range, consistency) -> imputation with the training medians
  (modes for yes/no and choices) -> encoding (choices one-hot against their first choice) -> standardisation
  -> RiskNet -> logit -> calibration map (Platt or isotonic, fitted on the validation split) -> probability.

Attributions are Integrated Gradients (captum) of the network's log-odds, from the baseline patient (every
input at its training median/mode) to this patient, converted to probability points by the calibration
map's secant between the two (the map is monotone, so signs are kept). They add up to probability -
baseline probability, up to the integration error (`convergence_delta_log_odds`, usually < 1e-4). The
log-odds are integrated rather than the calibrated probability because an isotonic map has steep steps
that a quadrature misses.

Everything numeric the forward pass needs (weights, standardisation, calibration) is in model.safetensors,
whose sha256 the registry checks; the imputation values, plausible ranges and feature list are in the
manifest's provenance, which is readable on the models page.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medui.risk.base import Field, RiskInputError

if TYPE_CHECKING:
    from medui.registry import ModelVersion

DEFAULT_MODEL = "risk-chd"
IG_STEPS = 64
IG_TOLERANCE = 0.005  # log-odds; above it the path is integrated again with more steps


# ---------------------------------------------------------------------------------------------- the network
class RiskNet(nn.Module):
    """Standardised inputs -> a few tanh hidden units -> one logit (readable on one screen, ~130 weights)."""

    def __init__(self, n_inputs: int, hidden: int = 8):
        super().__init__()
        self.hidden = nn.Linear(n_inputs, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x))).squeeze(-1)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """np.interp in torch (clipped at both ends), differentiable in x between the knots."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x.detach(), right=True).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    width = (x1 - x0).clamp_min(1e-12)
    return y0 + (y1 - y0) * (x - x0) / width


def calibrate(logit: torch.Tensor, calibration: dict[str, torch.Tensor]) -> torch.Tensor:
    """Map the network's logit to a calibrated probability with the stored map."""
    if "calibration.platt" in calibration:  # p = sigmoid(a * logit + b)
        a, b = calibration["calibration.platt"]
        return torch.sigmoid(a * logit + b)
    if "calibration.iso_x" in calibration:  # monotone piecewise-linear map of the uncalibrated probability
        return interp(torch.sigmoid(logit), calibration["calibration.iso_x"], calibration["calibration.iso_y"])
    return torch.sigmoid(logit)


def calibration_kind(calibration: Mapping[str, Any]) -> str:
    if "calibration.platt" in calibration:
        return "platt"
    return "isotonic" if "calibration.iso_x" in calibration else "none"


# ------------------------------------------------------------------------------------------- feature specs
@dataclass(frozen=True)
class Spec:
    """The inputs of one model: form fields (type, label, unit, plausible range) in a fixed order."""

    name: str
    outcome: str
    fields: tuple[Field, ...]
    # Consistency rules run before imputation: (values, impute or None) -> (derived notes, imputed names).
    rules: Callable[[dict[str, Any], Mapping[str, Any] | None], tuple[list[dict], list[str]]] | None = None

    @property
    def keys(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.name == key)

    @property
    def columns(self) -> list[str]:
        """Encoded column names; a choice contributes one column per non-reference choice."""
        out = []
        for f in self.fields:
            out += [f"{f.name}={c}" for c in f.choices[1:]] if f.kind == "choice" else [f.name]
        return out

    def groups(self) -> list[list[int]]:
        """For each field, the indices of its encoded columns (attributions are summed over a group)."""
        groups, start = [], 0
        for f in self.fields:
            width = len(f.choices) - 1 if f.kind == "choice" else 1
            groups.append(list(range(start, start + width)))
            start += width
        return groups

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        """One row of complete (already imputed) values -> floats in `columns` order."""
        row: list[float] = []
        for f in self.fields:
            v = values[f.name]
            if v is None:  # only the GBM peer leaves values missing (NaN) instead of imputing them
                row += [math.nan] * (len(f.choices) - 1 if f.kind == "choice" else 1)
            elif f.kind == "choice":
                row += [1.0 if v == c else 0.0 for c in f.choices[1:]]
            else:
                row.append(float(v))
        return row


def _framingham_rules(values: dict[str, Any], impute: Mapping[str, Any] | None) -> tuple[list[dict], list[str]]:
    """Smoking status and cigarettes per day must agree; each can fill in the other."""
    derived, imputed = [], []
    smoker, cigs = values.get("smoker"), values.get("cigs_per_day")
    if smoker is False and cigs is not None and cigs > 0:
        raise RiskInputError(f"cigs_per_day is {cigs:g} but smoker is false: correct one of them")
    if smoker is None and cigs is not None:
        values["smoker"] = cigs > 0
        derived.append({"feature": "smoker", "value": values["smoker"], "reason": "from cigs_per_day"})
    elif smoker is False and cigs is None:
        values["cigs_per_day"] = 0.0
        derived.append({"feature": "cigs_per_day", "value": 0.0, "reason": "non-smoker"})
    elif smoker is True and cigs is None and impute is not None:
        values["cigs_per_day"] = float(impute["cigs_per_day_if_smoker"])
        imputed.append("cigs_per_day")
    return derived, imputed


_SEX = Field("sex", "sex", "choice", choices=("female", "male"))

SPECS: dict[str, Spec] = {
    "framingham": Spec("framingham", "coronary heart disease within 10 years", (
        Field("age", "age", low=18, high=110, unit="years"),
        _SEX,
        Field("smoker", "current smoker", "bool"),
        Field("cigs_per_day", "smoking", low=0, high=100, unit="cigarettes/day"),
        Field("bp_treated", "on blood-pressure treatment", "bool"),
        Field("prevalent_stroke", "previous stroke", "bool"),
        Field("prevalent_hypertension", "hypertension", "bool"),
        Field("diabetes", "diabetes", "bool"),
        Field("total_cholesterol", "total cholesterol", low=50, high=1000, unit="mg/dL"),
        Field("systolic_bp", "systolic BP", low=50, high=300, unit="mmHg"),
        Field("diastolic_bp", "diastolic BP", low=20, high=200, unit="mmHg"),
        Field("bmi", "BMI", low=10, high=80, unit="kg/m²"),
        Field("heart_rate", "heart rate", low=20, high=250, unit="bpm"),
        Field("glucose", "glucose", low=20, high=1000, unit="mg/dL"),
    ), _framingham_rules),
    "uci-heart": Spec("uci-heart", "angiographic heart disease", (
        Field("age", "age", low=18, high=110, unit="years"),
        _SEX,
        Field("chest_pain", "chest pain", "choice",
              choices=("asymptomatic", "atypical angina", "non-anginal", "typical angina")),
        Field("systolic_bp", "resting systolic BP", low=50, high=300, unit="mmHg"),
        Field("total_cholesterol", "total cholesterol", low=50, high=1000, unit="mg/dL"),
        Field("fasting_glucose_over_120", "fasting glucose > 120 mg/dL", "bool"),
        Field("rest_ecg", "resting ECG", "choice", choices=("normal", "st-t abnormality", "lv hypertrophy")),
        Field("max_heart_rate", "maximum heart rate", low=40, high=250, unit="bpm"),
        Field("exercise_angina", "exercise-induced angina", "bool"),
        Field("st_depression", "ST depression", low=-5, high=10, unit="mm"),
    )),
}


def _missing(raw: Any) -> bool:
    return raw is None or (isinstance(raw, float) and math.isnan(raw))


def parse_inputs(spec: Spec, inputs: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Typed values (None where missing); a wrong type or implausible value names the field.

    Keys the model does not use are left out here (the shared risk form sends every calculator's fields);
    `predict` lists them under "ignored" so a misspelt name is visible.
    """
    if not isinstance(inputs, Mapping):
        raise RiskInputError(f"inputs for {model} must be a JSON object")
    values: dict[str, Any] = {}
    for f in spec.fields:
        raw = inputs.get(f.name)
        if _missing(raw):
            values[f.name] = None
            continue
        # Types exactly as the calculators check them; the range is only plausibility (unit mistakes).
        Field(f.name, f.label, f.kind, choices=f.choices).parse(raw, model)
        if f.kind == "number":
            raw = float(raw)
            if not f.low <= raw <= f.high:
                raise RiskInputError(f"{f.name} {raw:g} {f.unit} is outside the plausible range "
                                     f"{f.low:g}–{f.high:g} {f.unit} (check the unit)")
        values[f.name] = raw
    return values


def complete(spec: Spec, values: Mapping[str, Any], impute: Mapping[str, Any]) -> tuple[dict, list[str], list[dict]]:
    """Apply the spec's rules, then fill what is still missing from `impute`: (values, imputed, derived)."""
    values = dict(values)
    derived, imputed = spec.rules(values, impute) if spec.rules else ([], [])
    for key in spec.keys:
        if values.get(key) is None:
            values[key] = impute[key]
            imputed.append(key)
    return values, [k for k in spec.keys if k in imputed], derived


def rows_from_frame(spec: Spec, frame) -> list[dict[str, Any]]:
    """A cohort's `inputs` DataFrame as parsed value dicts (NaN -> None, numpy scalars -> Python)."""
    cast = {"number": float, "bool": bool, "choice": str}
    return [{f.name: None if _missing(record[f.name]) else cast[f.kind](record[f.name]) for f in spec.fields}
            for record in frame[spec.keys].to_dict("records")]


def fit_imputation(spec: Spec, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Training medians (modes for yes/no and choices) and the 1st–99th percentile of each number."""
    ruled = []
    for row in rows:
        row = dict(row)
        if spec.rules:
            spec.rules(row, None)
        ruled.append(row)
    impute, ranges = {}, {}
    for f in spec.fields:
        seen = [r[f.name] for r in ruled if r[f.name] is not None]
        if f.kind == "number":
            impute[f.name] = float(np.median(seen))
            ranges[f.name] = [float(np.percentile(seen, 1)), float(np.percentile(seen, 99))]
        else:
            options = (False, True) if f.kind == "bool" else f.choices
            counts = [sum(1 for v in seen if v == o) for o in options]
            impute[f.name] = options[int(np.argmax(counts))]
    if spec.name == "framingham":
        impute["cigs_per_day_if_smoker"] = float(np.median(
            [r["cigs_per_day"] for r in ruled if r["smoker"] is True and r["cigs_per_day"] is not None]))
    return impute, ranges


def encode_rows(spec: Spec, rows: list[dict[str, Any]], impute: Mapping[str, Any]) -> np.ndarray:
    return np.array([spec.encode(complete(spec, row, impute)[0]) for row in rows], dtype=np.float32)


# ------------------------------------------------------------------------------------------ loading (registry)
@dataclass
class LoadedModel:
    name: str
    version: str
    spec: Spec
    net: RiskNet
    mean: torch.Tensor
    scale: torch.Tensor
    calibration: dict[str, torch.Tensor]
    impute: dict[str, Any]
    ranges: dict[str, list[float]]
    baseline: torch.Tensor = field(init=False)
    baseline_probability: float = field(init=False)

    def __post_init__(self) -> None:
        raw = torch.tensor([self.spec.encode(self.impute)], dtype=torch.float32)
        self.baseline = self.standardise(raw)
        self.baseline_probability = float(self.probability(self.baseline)[0])

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale

    def probability(self, x_std: torch.Tensor) -> torch.Tensor:
        """Calibrated probability of standardised rows (what the attributions explain)."""
        return calibrate(self.net(x_std), self.calibration)


_CACHE: dict[tuple[str, str, str, str], LoadedModel] = {}
_CACHE_SIZE = 4
_LOCK = threading.Lock()  # sessions run in threads: without it two first requests each read the weights


def state_from_tensors(state: Mapping[str, torch.Tensor], n_inputs: int) -> tuple[RiskNet, dict]:
    hidden = state["net.hidden.weight"].shape[0]
    net = RiskNet(n_inputs, hidden)
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, {k: v for k, v in state.items() if k.startswith("calibration.")}


def load(name: str = DEFAULT_MODEL, version: str | int | None = None) -> LoadedModel:
    """The production version (or `version`) from the registry, cached per (name, version, folder, digest).

    The registry is asked every call, so a promotion or rollback is picked up at once; the weights are
    read (and sha256-checked) only the first time a version is seen.
    """
    from medui import registry

    mv = registry.get_version(name, version)
    weights = "|".join(f"{f.path}:{f.sha256}" for f in mv.weight_files)
    key = (mv.name, mv.version, str(mv.directory), weights)
    with _LOCK:
        if key not in _CACHE:
            loaded = _load(mv)
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = loaded
        return _CACHE[key]


def _load(mv: ModelVersion) -> LoadedModel:
    from medui import registry

    if mv.task != "risk":
        raise registry.RegistryError(f"{mv.name} version {mv.version} is a {mv.task} model, not a risk model")
    prov = mv.provenance
    spec = SPECS.get(prov.get("feature_spec", ""))
    if spec is None or prov.get("features") != spec.columns:
        raise registry.RegistryError(f"{mv.name} version {mv.version}: its feature list does not match this MedUI "
                                     f"(spec {prov.get('feature_spec')!r})")
    state = registry.load_state_dict(mv)
    net, calibration = state_from_tensors(state, len(spec.columns))
    return LoadedModel(mv.name, mv.version, spec, net, state["preprocess.mean"], state["preprocess.scale"],
                       calibration, dict(prov["imputation"]), dict(prov["feature_ranges"]))


# ---------------------------------------------------------------------------------------------- inference
def _integrated_gradients(m: LoadedModel, x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """IG of the network's log-odds (smooth, unlike an isotonic map) from the baseline patient to `x`."""
    from captum.attr import IntegratedGradients  # imported late: captum takes a second to import

    ig = IntegratedGradients(m.net)
    for steps in (IG_STEPS, 4 * IG_STEPS):
        attr, delta = ig.attribute(x, baselines=m.baseline, n_steps=steps, method="gausslegendre",
                                   return_convergence_delta=True)
        if abs(float(delta)) <= IG_TOLERANCE:
            break
    return attr[0], float(delta), steps


def _points_per_log_odd(m: LoadedModel, z: float, z0: float) -> float:
    """Secant of the calibration map between the baseline's and the patient's log-odds (its slope if equal).

    The map is monotone, so this is >= 0: each feature keeps the sign of its log-odds contribution, and the
    contributions add up to probability - baseline probability (the DeepLIFT "rescale" rule for a 1-D map).
    """
    def p(value: float) -> float:
        return float(calibrate(torch.tensor([value], dtype=torch.float32), m.calibration)[0])

    if abs(z - z0) > 1e-4:
        return (p(z) - p(z0)) / (z - z0)
    return (p(z0 + 1e-3) - p(z0 - 1e-3)) / 2e-3


def predict(inputs: Mapping[str, Any], model: str = DEFAULT_MODEL, version: str | int | None = None) -> dict:
    """Calibrated probability, per-feature attributions against the training-median patient, and caveats."""
    m = load(model, version)
    spec = m.spec
    values, imputed, derived = complete(spec, parse_inputs(spec, inputs, m.name), m.impute)
    ignored = sorted(str(k) for k in inputs if k not in spec.keys)

    ood = []
    for key, (low, high) in m.ranges.items():
        v = values[key]
        if key not in imputed and not low <= v <= high:
            f = spec.field(key)
            ood.append({"feature": key, "label": f.label, "value": v, "low": low, "high": high, "unit": f.unit,
                        "message": f"{f.label} {v:g} {f.unit} is outside the training range {low:g}–{high:g} "
                                   f"{f.unit} (1st–99th percentile): the estimate is less reliable there"})

    x = m.standardise(torch.tensor([spec.encode(values)], dtype=torch.float32))
    with torch.no_grad():
        z, z0 = float(m.net(x)[0]), float(m.net(m.baseline)[0])
        probability = float(m.probability(x)[0])
    attr, delta, steps = _integrated_gradients(m, x)
    scale = _points_per_log_odd(m, z, z0)

    attributions = []
    for f, cols in zip(spec.fields, spec.groups()):
        log_odds = float(attr[cols].sum())
        attributions.append({"feature": f.name, "label": f.label, "value": values[f.name], "unit": f.unit,
                             "contribution": scale * log_odds, "log_odds": log_odds, "imputed": f.name in imputed})
    attributions.sort(key=lambda a: -abs(a["contribution"]))
    return {
        "probability": probability,
        "attributions": attributions,
        "baseline": {
            "description": "a patient with every input at the training-population median (mode for yes/no "
                           "and choices); contributions add up to probability - baseline probability",
            "inputs": {k: m.impute[k] for k in spec.keys},
            "probability": m.baseline_probability,
            "method": f"Integrated Gradients (captum, {steps} Gauss-Legendre steps) of the network's log-odds, "
                      "converted to probability by the calibration map's secant",
            "log_odds": z0,
            "convergence_delta_log_odds": delta,
        },
        "imputed": imputed,
        "derived": derived,
        "ignored": ignored,
        "out_of_distribution": ood,
        "outcome": spec.outcome,
        "calibration": calibration_kind(m.calibration),
        "model": m.name,
        "version": m.version,
    }


def _value_text(a: Mapping[str, Any]) -> str:
    v = a["value"]
    if isinstance(v, bool):
        return f"{a['label']}: {'yes' if v else 'no'}"
    if isinstance(v, str):
        return f"{a['label']}: {v}"
    unit = a.get("unit") or ""
    number = f"{round(float(v), 1):g}"
    return f"{a['label']} {number}{'' if unit.startswith('/') else ' '}{unit}".rstrip()


def describe(attribution: Mapping[str, Any]) -> str:
    """Plain words: "systolic BP 162 mmHg adds 3.1 percentage points" (compared with the baseline patient)."""
    text = _value_text(attribution)
    if attribution.get("imputed"):
        text += " (missing: training median used)"
    points = 100 * float(attribution["contribution"])
    if abs(points) < 0.05:
        return f"{text} makes almost no difference (0.0 percentage points)"
    return f"{text} {'adds' if points > 0 else 'takes away'} {abs(points):.1f} percentage points"
