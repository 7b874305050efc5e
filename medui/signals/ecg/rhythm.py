"""Rhythm classification of an ECG record with the production `ecg-rhythm` model, with attributions.

The model comes only from the registry (`registry.get_version("ecg-rhythm")` then
`medui.training.load_for_inference`), cached per (name, version). The shipped version is a one-lead 1-D
ResNet trained on synthetic strips (see `train_default`); a multi-lead record is classified lead by lead and
the class logits are averaged over leads (and over consecutive windows when the record is longer than the
model's window), so the prediction is the softmax of that mean logit.

Attributions are Integrated Gradients (captum) of the predicted class's mean logit, taken in the model's
standardised input space (each lead of each window shifted to mean 0 and scaled to SD 1, exactly as the
network does it internally), from a blurred copy of the record there (a 0.5 s moving average: no P, QRS
or T left). A flat zero baseline does not work for this network: it normalises scale (per-lead
standardisation, GroupNorm), so along the path from a flat line the output jumps at a vanishing amplitude
and the integral cannot be resolved. Completeness holds in that space: the
attributions add up to logit(x) - logit(baseline) up to the integration error reported as
`convergence_delta`. They are mapped back to the input's sampling rate by a sum-preserving interpolation of
their cumulative sum, so a sample's value is the share of the logit change owed to that stretch of signal.
"""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from typing import Any

import numpy as np

from medui.registry import RegistryError

MODEL_NAME = "ecg-rhythm"
IG_STEPS = 32
BASELINE_S = 0.5
BASELINE = (f"the record blurred beyond recognition: a {BASELINE_S:g} s moving average of each lead after per-lead "
            "standardisation (P, QRS and T smoothed away, slow baseline kept); not a flat line, because the network "
            "normalises scale, so a path from a flat line changes nothing until the signal is vanishingly faint")
_CACHE: dict[tuple[str, str], tuple[Any, list[str], dict[str, Any], dict[str, Any]]] = {}
_LOCK = threading.Lock()

__all__ = ["MODEL_NAME", "RegistryError", "classify", "clear_cache", "occlusion", "segment_attribution",
           "window_probabilities"]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def _load() -> tuple[Any, list[str], dict[str, Any], dict[str, Any]]:
    """(model, labels, arch, model info) of the production version; RegistryError when there is none."""
    from medui.registry import get_version
    from medui.training import load_for_inference

    mv = get_version(MODEL_NAME)  # RegistryError: no model, or no production version
    key = (mv.name, mv.version)
    with _LOCK:
        if key not in _CACHE:
            model, labels = load_for_inference(mv)  # verifies the files' digests first
            arch = json.loads((mv.directory / "architecture.json").read_text(encoding="utf-8"))["arch"]
            info = {"name": mv.name, "version": mv.version}
            note = mv.provenance.get("note") if isinstance(mv.provenance, dict) else None
            if note:
                info["note"] = note
            _CACHE[key] = (model, labels, arch, info)
        return _CACHE[key]


class _FromStandardised:
    """The network's logits for input already standardised per lead (its own first step skipped).

    EcgNet standardises inside forward, which makes it blind to scale: along the straight path a*x the
    input it sees does not change, so IG from zero on raw samples would be meaningless. Here the path runs
    through the standardised signal, from the flat line to what the network actually sees.
    """

    def __init__(self, net: Any) -> None:
        self.net = net

    def __call__(self, z: Any) -> Any:
        import torch.nn.functional as F

        n = self.net
        h = F.relu(n.stem_norm(n.stem(z)))
        h = n.blocks(h).mean(-1)
        return n.head(n.dropout(F.relu(n.embed(h))))


def _resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    from scipy.signal import resample_poly

    if abs(fs_in - fs_out) < 1e-9:
        return x.astype(np.float64)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Per row, as EcgNet.features does it (population mean, sample SD, +1e-6)."""
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, ddof=1, keepdims=True) + 1e-6)


def _window_starts(n: int, length: int) -> list[int]:
    if n <= length:
        return [0]
    count = int(np.ceil(n / length))
    return sorted({round(s) for s in np.linspace(0, n - length, count)})


def _prepare(signals: np.ndarray, fs: float, lead_names: list[str], arch: dict[str, Any]) -> dict[str, Any]:
    """Resample, window and standardise; returns the model inputs and how to map results back."""
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"signals must be [leads, samples]; got shape {x.shape}")
    if len(lead_names) != x.shape[0]:
        raise ValueError(f"{len(lead_names)} lead names for {x.shape[0]} leads")
    if not fs or fs <= 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    model_fs = float(arch.get("fs") or 100.0)
    length, model_leads = int(arch["samples"]), int(arch["leads"])
    warnings: list[str] = []
    usable = []
    for i, name in enumerate(lead_names):
        if not np.isfinite(x[i]).all():
            warnings.append(f"lead {name}: missing or non-finite samples; left out of the classification")
        elif np.ptp(x[i]) == 0:
            warnings.append(f"lead {name}: flat signal; left out of the classification")
        else:
            usable.append(i)
    if not usable:
        raise ValueError("no usable lead: every lead is flat or has missing samples")
    if fs < model_fs:
        warnings.append(f"recorded at {fs:g} Hz, below the model's {model_fs:g} Hz; upsampled, detail may be lost")
    resampled = _resample(x[usable], fs, model_fs)
    n = resampled.shape[-1]
    if n < length:
        warnings.append(f"record is {n / model_fs:.1f} s, shorter than the model's {length / model_fs:g} s window; "
                        "padded by repeating its edges, so the result is less reliable")
        resampled = np.pad(resampled, ((0, 0), (0, length - n)), mode="edge")
    starts = _window_starts(resampled.shape[-1], length)
    if len(starts) > 1:
        warnings.append(f"record longer than the model's {length / model_fs:g} s window: {len(starts)} windows, "
                        "class scores averaged")
    if model_leads == 1:  # one unit per (lead, window)
        units = [(lead, s) for lead in range(len(usable)) for s in starts]
        z = np.stack([_standardise(resampled[lead, s:s + length])[None, :] for lead, s in units])
    elif model_leads == len(usable):  # one unit per window, all leads together
        units = [(None, s) for s in starts]
        z = np.stack([_standardise(resampled[:, s:s + length]) for _, s in units])
    else:
        raise ValueError(f"the model reads {model_leads} leads; the record has {len(usable)} usable leads")
    return {"z": z.astype(np.float32), "units": units, "usable": usable, "n_model": n, "padded_n": resampled.shape[-1],
            "length": length, "model_fs": model_fs, "n_in": x.shape[-1], "fs": float(fs), "warnings": warnings,
            "leads": x.shape[0]}


def _baseline(z: np.ndarray, model_fs: float) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    width = max(1, round(BASELINE_S * model_fs))
    return uniform_filter1d(z, width, axis=-1, mode="nearest").astype(np.float32)


def _predict(model: Any, z: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return _FromStandardised(model)(torch.from_numpy(z)).double().numpy()


def _to_input_rate(values: np.ndarray, model_fs: float, fs: float, n_in: int) -> np.ndarray:
    """Sum-preserving map of per-sample attributions [leads, m] at model_fs onto n_in samples at fs."""
    m = values.shape[-1]
    edges_model = np.arange(m + 1) / model_fs
    edges_in = np.minimum(np.arange(n_in + 1) / fs, edges_model[-1])
    cum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, -1)], -1)
    at = np.stack([np.interp(edges_in, edges_model, row) for row in cum])
    return np.diff(at, axis=-1)


def _map_back(unit_attr: np.ndarray, prep: dict[str, Any]) -> np.ndarray:
    """Unit attributions [units, model_leads, length] -> [input leads, input samples] (unusable leads 0)."""
    timeline = np.zeros((len(prep["usable"]), prep["padded_n"]))
    length = prep["length"]
    for attr, (lead, s) in zip(unit_attr, prep["units"]):
        if lead is None:
            timeline[:, s:s + length] += attr
        else:
            timeline[lead, s:s + length] += attr[0]
    timeline = timeline[:, :prep["n_model"]]  # attributions to edge padding are dropped with it
    out = np.zeros((prep["leads"], prep["n_in"]))
    out[prep["usable"]] = _to_input_rate(timeline, prep["model_fs"], prep["fs"], prep["n_in"])
    return out


def _per_lead(per_sample: np.ndarray, lead_names: list[str], usable: list[int]) -> dict[str, float]:
    """Each lead's share of the total absolute attribution (sums to 1)."""
    mass = np.abs(per_sample).sum(-1)
    total = mass.sum()
    if total <= 0:
        mass = np.array([1.0 if i in usable else 0.0 for i in range(len(lead_names))])
        total = mass.sum()
    return {name: float(v / total) for name, v in zip(lead_names, mass)}


def _scores(logits: np.ndarray, labels: list[str]) -> tuple[int, list[dict[str, Any]], float]:
    mean = logits.mean(0)
    probs = np.exp(mean - mean.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    return int(order[0]), [{"label": labels[i], "probability": float(probs[i])} for i in order], float(mean[order[0]])


def classify(signals: np.ndarray, fs: float, lead_names: list[str], *, ig_steps: int = IG_STEPS,
             explain: bool = True) -> dict[str, Any]:
    """Rhythm class probabilities for one record [leads, samples] at `fs` Hz, with IG attributions
    (left out, and the call several times faster, with explain=False).

    Raises RegistryError when no production `ecg-rhythm` is registered, ValueError for unusable input.
    """
    import torch
    from captum.attr import IntegratedGradients

    model, labels, arch, info = _load()
    prep = _prepare(signals, fs, list(lead_names), arch)
    z = prep["z"]
    logits = _predict(model, z)
    target, rhythm, logit = _scores(logits, labels)
    if not explain:
        return {"rhythm": rhythm, "model": dict(info), "warnings": list(prep["warnings"])}
    ig = IntegratedGradients(_FromStandardised(model))
    inputs = torch.from_numpy(z)
    base = _baseline(z, prep["model_fs"])
    attr, delta = ig.attribute(inputs, baselines=torch.from_numpy(base), target=target, n_steps=ig_steps,
                               method="gausslegendre", internal_batch_size=256, return_convergence_delta=True)
    units = len(prep["units"])
    # The prediction is the mean logit over units, so each unit's IG (of its own logit) counts 1/units.
    unit_attr = attr.detach().double().numpy() / units
    baseline_logit = float(_predict(model, base)[:, target].mean())
    per_sample = _map_back(unit_attr, prep)
    result_warnings = list(prep["warnings"])
    model_space_sum = float(unit_attr.sum())
    # captum's delta is sum(attributions) - (logit(x) - logit(baseline)), per unit; this is the mean logit's.
    delta_mean = float(delta.detach().double().sum()) / units
    if abs(delta_mean) > 0.05 * max(1.0, abs(logit - baseline_logit)):
        result_warnings.append(f"attributions approximate: integration error {delta_mean:.3f} logit")
    return {
        "rhythm": rhythm,
        "model": dict(info),
        "attributions": {
            "method": "integrated_gradients",
            "baseline": BASELINE,
            "target": labels[target],
            "quantity": "logit of the predicted class (mean over leads and windows)",
            "per_sample": per_sample.tolist(),
            "per_lead": _per_lead(per_sample, list(lead_names), prep["usable"]),
            "sum": model_space_sum,
            "logit": logit,
            "baseline_logit": baseline_logit,
            "convergence_delta": delta_mean,
            "steps": ig_steps,
            "space": "model input (per-lead standardised, resampled); sum + convergence_delta = logit - "
                     "baseline_logit there, per_sample is that mapped to the input rate (edge padding dropped)",
        },
        "warnings": result_warnings,
    }


def window_probabilities(signal: np.ndarray, fs: float) -> dict[str, Any]:
    """Class probabilities of each model window of one lead, for long recordings where one averaged opinion would
    hide a paroxysm: {"labels", "starts_s" (window starts in the input), "probabilities" [windows, classes],
    "window_s", "model"}. Needs a one-lead model; RegistryError / ValueError as `classify`."""
    model, labels, arch, info = _load()
    if int(arch["leads"]) != 1:
        raise ValueError(f"the rhythm model reads {arch['leads']} leads together; per-window burden needs a "
                         "one-lead model")
    prep = _prepare(np.asarray(signal)[None, :], fs, ["lead"], arch)
    logits = _predict(model, prep["z"])
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return {"labels": list(labels), "starts_s": [s / prep["model_fs"] for _, s in prep["units"]],
            "probabilities": probs, "window_s": prep["length"] / prep["model_fs"], "model": dict(info)}


def occlusion(signals: np.ndarray, fs: float, lead_names: list[str], *, window_s: float = 0.25,
              stride_s: float | None = None) -> dict[str, Any]:
    """Occlusion (captum) over time windows: how much the predicted class's mean logit drops when a
    `window_s` stretch of a lead is replaced by the same stretch of the blurred baseline (see BASELINE). Same output layout as
    classify's "attributions" (per_sample mapped back to the input rate, per_lead shares)."""
    import torch
    from captum.attr import Occlusion

    model, labels, arch, info = _load()
    prep = _prepare(signals, fs, list(lead_names), arch)
    z = prep["z"]
    target, rhythm, _ = _scores(_predict(model, z), labels)
    window = max(1, round(window_s * prep["model_fs"]))
    stride = max(1, round((stride_s or window_s) * prep["model_fs"]))
    inputs = torch.from_numpy(z)
    attr = Occlusion(_FromStandardised(model)).attribute(
        inputs, sliding_window_shapes=(z.shape[1], window), strides=(z.shape[1], stride),
        baselines=torch.from_numpy(_baseline(z, prep["model_fs"])),
        target=target)
    # captum spreads each window's logit drop over every sample it covers (averaged over overlapping windows);
    # per-sample values are in logit units per sample at the model rate.
    unit_attr = attr.detach().double().numpy() / len(prep["units"])
    per_sample = _map_back(unit_attr, prep)
    return {
        "rhythm": rhythm,
        "model": dict(info),
        "attributions": {
            "method": "occlusion",
            "baseline": BASELINE,
            "target": labels[target],
            "window_s": window / prep["model_fs"],
            "stride_s": stride / prep["model_fs"],
            "per_sample": per_sample.tolist(),
            "per_lead": _per_lead(per_sample, list(lead_names), prep["usable"]),
        },
        "warnings": list(prep["warnings"]),
    }


def segment_attribution(per_sample: Any, segments: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Sum attributions over beat segments given as (label e.g. "P"/"QRS"/"T", start, end) sample ranges.

    `per_sample` is [leads][samples] (or one lead's [samples]); ranges are half-open [start, end) in input
    samples, clipped to the record, and summed over all leads. Returns {"segments": [{label, start, end,
    attribution, per_lead}], "by_label": {label: total}} with segments in the order given.
    """
    values = np.asarray(per_sample, dtype=np.float64)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2:
        raise ValueError(f"per_sample must be [leads][samples]; got shape {values.shape}")
    n = values.shape[-1]
    out, by_label = [], {}
    for label, start, end in segments:
        lo, hi = max(0, int(start)), min(n, int(end))
        per_lead = values[:, lo:hi].sum(-1) if hi > lo else np.zeros(values.shape[0])
        total = float(per_lead.sum())
        out.append({"label": str(label), "start": int(start), "end": int(end), "attribution": total,
                    "per_lead": per_lead.tolist()})
        by_label[str(label)] = by_label.get(str(label), 0.0) + total
    return {"segments": out, "by_label": by_label}
