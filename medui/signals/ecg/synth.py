"""Reproducible synthetic rhythm strips for training and testing the `ecg-rhythm` model — not real ECGs.

Every record is built at 500 Hz from a beat template (P, Q, R, S and T as Gaussian bumps, the same
morphology model NeuroKit2's "ecgsyn" uses, but placed directly so rhythm is fully under our control and
generation is fast), then perturbed (baseline wander, white and powerline noise, amplitude, heart-rate
variability, QRS/T shape jitter) and resampled to `fs` with scipy's polyphase filter. NeuroKit2 supplies
the respiration-like baseline wander (`nk.signal_simulate`) and the QRS detector the tests use.

Classes (how each is made):
    sinus rhythm        P before every QRS, rate drawn from 62-98 bpm, RR jitter 1-4 % (respiratory HRV)
    sinus bradycardia   as sinus rhythm, rate 38-57 bpm
    sinus tachycardia   as sinus rhythm, rate 104-160 bpm (QT and PR shortened with the RR interval)
    atrial fibrillation no P waves; RR intervals drawn independently (lognormal, coefficient of variation
                        15-30 %) around a mean rate of 60-150 bpm; fibrillatory f-waves on the baseline:
                        2-3 sinusoids of 4-9 Hz with slowly drifting frequency and amplitude 0.03-0.12 mV
    ectopic beats       sinus background (60-100 bpm) with 2-4 premature ventricular beats, each at 55-75 %
                        of the sinus RR, wide (QRS ~120-160 ms), without P wave, with a discordant T wave and a
                        full compensatory pause (the next sinus beat comes two sinus cycles after the last one)
Lead polarity is never inverted. With leads=2 the second lead is a V1-like projection of the same beats
(smaller R, deeper S, biphasic P, flatter T) with its own noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

CLASSES = ("sinus rhythm", "sinus bradycardia", "sinus tachycardia", "atrial fibrillation", "ectopic beats")
_FS_HI = 500  # generation rate; records are resampled to the requested fs at the end

# Wave: (offset from R in s, width sigma in s, amplitude in mV) for a lead-II-like and a V1-like lead.
_LEAD_WEIGHTS = (
    {"P": 0.15, "Q": -0.10, "R": 1.00, "S": -0.25, "T": 0.30},
    {"P": 0.08, "Q": 0.00, "R": 0.35, "S": -0.90, "T": 0.10},
)


def _gauss(t: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / sigma) ** 2)


def _add_beat(out: np.ndarray, t: np.ndarray, r: float, rr: float, rng: np.random.Generator, *,
              p_wave: bool, ventricular: bool, shape: dict) -> None:
    """Add one beat with its R peak at time `r` (s) to every lead of `out` [leads, samples]."""
    sqrt_rr = np.sqrt(np.clip(rr, 0.3, 2.0))
    pr, qt = shape["pr"] * (0.85 + 0.15 * sqrt_rr), shape["qt"] * sqrt_rr  # Bazett-like QT
    lo, hi = np.searchsorted(t, r - 0.4), np.searchsorted(t, r + 0.6)  # only touch the samples near the beat
    tt = t[lo:hi]
    for lead, w in enumerate(_LEAD_WEIGHTS[: out.shape[0]]):
        if ventricular:  # wide, tall QRS with a discordant T; no preceding P
            wave = (1.6 * w["R"] * _gauss(tt, r, shape["qrs"] * 3.5)
                    - 0.6 * _gauss(tt, r + 0.07, 0.03)
                    - 0.8 * w["T"] / abs(w["T"]) * 0.45 * _gauss(tt, r + qt * 1.1, 0.06))
        else:
            wave = (w["Q"] * _gauss(tt, r - 0.025, shape["qrs"] * 0.8)
                    + w["R"] * shape["r_amp"] * _gauss(tt, r, shape["qrs"])
                    + w["S"] * _gauss(tt, r + 0.028, shape["qrs"])
                    + w["T"] * shape["t_amp"] * _gauss(tt, r + qt * 0.85, 0.045))
            if p_wave:
                p = _gauss(tt, r - pr, 0.022)
                if lead == 1:  # V1: biphasic P
                    p = p - 0.8 * _gauss(tt, r - pr + 0.03, 0.018)
                wave = wave + w["P"] * shape["p_amp"] * p
        out[lead, lo:hi] += wave


def _sinus_rr(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sinus RR intervals: mean 60/rate, small respiratory modulation plus jitter."""
    base = 60.0 / rate
    phase, resp = rng.uniform(0, 2 * np.pi), rng.uniform(0.01, 0.04)
    k = np.arange(n)
    return base * (1 + resp * np.sin(2 * np.pi * k * base / rng.uniform(3.0, 6.0) + phase)
                   + rng.normal(0, 0.01, n))


def _rhythm(label: str, seconds: float, rng: np.random.Generator) -> list[tuple[float, float, bool, bool]]:
    """(R time s, RR before it s, has P wave, ventricular) for every beat of a `seconds`-long strip."""
    start = -rng.uniform(0.2, 1.5)  # beats start before the window, so the strip opens mid-rhythm
    n = int(seconds * 4) + 10  # more than enough beats for 240 bpm
    if label == "atrial fibrillation":
        mean_rr, cv = 60.0 / rng.uniform(60, 150), rng.uniform(0.15, 0.30)
        sigma = np.sqrt(np.log(1 + cv ** 2))
        rrs = np.clip(mean_rr * rng.lognormal(-sigma ** 2 / 2, sigma, n), 0.28, 2.0)
        beats = [(0.0, r, False, False) for r in rrs]
    else:
        rate = {"sinus rhythm": (62, 98), "sinus bradycardia": (38, 57), "sinus tachycardia": (104, 160),
                "ectopic beats": (60, 100)}[label]
        rrs = _sinus_rr(rng.uniform(*rate), n, rng)
        beats = [(0.0, r, True, False) for r in rrs]
    times, t = [], start
    for _, rr, p, v in beats:
        t += rr
        times.append((t, rr, p, v))
    if label == "ectopic beats":
        # Replace sinus beat k+1 by a premature ventricular beat and drop nothing: the PVC sits at 55-75 % of the
        # cycle, the following sinus beat keeps its place (k+2), so the pause after the PVC is compensatory.
        inside = [i for i, (r, *_ ) in enumerate(times) if 0.5 < r < seconds - 1.0 and i > 0]
        count = min(len(inside) // 3, int(rng.integers(2, 5)))
        chosen: list[int] = []
        for i in rng.permutation(inside):
            if all(abs(i - j) > 2 for j in chosen):
                chosen.append(int(i))
            if len(chosen) == count:
                break
        for i in chosen:
            prev_r, rr = times[i - 1][0], times[i][1]
            times[i] = (prev_r + rr * rng.uniform(0.55, 0.75), rr, False, True)
    return [b for b in times if -0.6 < b[0] < seconds + 0.6]


def _record(label: str, rng: np.random.Generator, fs: float, seconds: float, leads: int) -> np.ndarray:
    import neurokit2 as nk

    n_hi = round(seconds * _FS_HI)
    t = np.arange(n_hi) / _FS_HI
    out = np.zeros((leads, n_hi))
    shape = {"pr": rng.uniform(0.13, 0.20), "qt": rng.uniform(0.36, 0.42), "qrs": rng.uniform(0.008, 0.013),
             "r_amp": rng.uniform(0.7, 1.3), "t_amp": rng.uniform(0.6, 1.4), "p_amp": rng.uniform(0.7, 1.3)}
    for r, rr, p_wave, ventricular in _rhythm(label, seconds, rng):
        _add_beat(out, t, r, rr, rng, p_wave=p_wave, ventricular=ventricular, shape=shape)
    if label == "atrial fibrillation":  # f-waves: 2-3 drifting 4-9 Hz oscillations, different phase per lead
        for lead in range(leads):
            for _ in range(int(rng.integers(2, 4))):
                f0 = rng.uniform(4, 9)
                drift = np.cumsum(rng.normal(0, 0.002, n_hi))
                freq = np.clip(f0 + drift, 4, 9)
                phase = 2 * np.pi * np.cumsum(freq) / _FS_HI + rng.uniform(0, 2 * np.pi)
                out[lead] += rng.uniform(0.03, 0.12) / 1.5 * np.sin(phase)
    for lead in range(leads):  # perturbations: amplitude, baseline wander, white and mains noise
        out[lead] *= rng.uniform(0.5, 2.0)
        wander = nk.signal_simulate(duration=seconds, sampling_rate=_FS_HI, frequency=rng.uniform(max(0.15, 1.2 / seconds), 0.5),
                                    amplitude=rng.uniform(0.0, 0.3))
        out[lead] += wander[:n_hi] + rng.uniform(-0.5, 0.5)
        out[lead] += rng.normal(0, rng.uniform(0.005, 0.04), n_hi)
        out[lead] += rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * t)
    if fs != _FS_HI:
        from fractions import Fraction

        ratio = Fraction(float(fs) / _FS_HI).limit_denominator(1000)
        out = resample_poly(out, ratio.numerator, ratio.denominator, axis=-1)
    return out[:, : round(seconds * fs)].astype(np.float32)


def make_dataset(n_per_class: int, seed: int, fs: float = 100, seconds: float = 10, leads: int = 1,
                 classes: tuple[str, ...] = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """(signals [N, leads, samples] float32 in mV, labels [N] str), classes interleaved; same seed, same data."""
    if leads not in (1, 2):
        raise ValueError("leads must be 1 or 2")
    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; known: {', '.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    signals, labels = [], []
    for _ in range(n_per_class):
        for label in classes:
            signals.append(_record(label, rng, fs, seconds, leads))
            labels.append(label)
    return np.stack(signals), np.array(labels)


def write_npz(path: str | Path, n_per_class: int, seed: int, fs: float = 100, seconds: float = 10,
              leads: int = 1) -> Path:
    """Write a dataset the `ecg` training task reads: signals, labels (plain strings) and fs."""
    signals, labels = make_dataset(n_per_class, seed, fs=fs, seconds=seconds, leads=leads)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, signals=signals, labels=labels.astype(str), fs=np.array(float(fs)))
    return path


def long_recording(plan: list[tuple[str, float]], seed: int, fs: float = 250) -> np.ndarray:
    """One lead [samples] float32 in mV made of consecutive segments (class, seconds), e.g. a Holter-length
    recording with a paroxysm of atrial fibrillation; each segment is generated like a training strip."""
    rng = np.random.default_rng(seed)
    return np.concatenate([_record(label, rng, fs, seconds, 1)[0] for label, seconds in plan])
