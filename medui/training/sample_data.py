"""Reproducible synthetic sample datasets for the training tasks (no patient data, no downloads).

`python -m medui.training.sample_data` rewrites medui/training/samples/; the committed files are its output.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent / "samples"

# (offset from the R peak in s, amplitude in mV, width in s) of the P, Q, R, S and T waves.
_WAVES = {"P": (-0.20, 0.15, 0.025), "Q": (-0.03, -0.10, 0.010), "R": (0.0, 1.0, 0.012),
          "S": (0.03, -0.20, 0.010), "T": (0.25, 0.30, 0.040)}


def _beat_train(t: np.ndarray, peaks: np.ndarray, with_p: bool) -> np.ndarray:
    signal = np.zeros_like(t)
    for name, (offset, amp, width) in _WAVES.items():
        if name == "P" and not with_p:
            continue
        for peak in peaks:
            signal += amp * np.exp(-0.5 * ((t - peak - offset) / width) ** 2)
    return signal


def ecg_rhythm(records: int = 48, fs: float = 100.0, seconds: float = 2.5, seed: int = 0) -> dict[str, np.ndarray]:
    """Half "sinus" (regular RR, P waves), half "irregular" (AF-like: erratic RR, no P, fibrillatory baseline)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    signals, labels = [], []
    for i in range(records):
        irregular = i % 2 == 1
        rr_mean = 60.0 / rng.uniform(80, 130) if irregular else 60.0 / rng.uniform(55, 95)
        spread = 0.35 if irregular else 0.03
        peaks, time = [], -rng.uniform(0, rr_mean)
        while time < seconds + 0.5:
            time += rr_mean * max(0.4, 1 + spread * rng.standard_normal())
            peaks.append(time)
        x = _beat_train(t, np.array(peaks), with_p=not irregular)
        if irregular:
            x += 0.1 * np.sin(2 * np.pi * rng.uniform(5, 7) * t + rng.uniform(0, 2 * np.pi))  # f-waves
        x += 0.1 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi)) + 0.02 * rng.standard_normal(t.size)
        signals.append(x[None, :])
        labels.append("irregular" if irregular else "sinus")
    return {"signals": np.stack(signals).astype(np.float32), "labels": np.array(labels), "fs": np.array(fs)}


_CASES = [  # (problem, medication, dosage): clinically coherent triples, invented sentences
    ("type 2 diabetes", "metformin", "500 mg twice daily"), ("hypertension", "lisinopril", "10 mg once daily"),
    ("atrial fibrillation", "apixaban", "5 mg twice daily"),
    ("community-acquired pneumonia", "amoxicillin", "875 mg every 12 hours"),
    ("migraine", "sumatriptan", "50 mg as needed"), ("asthma", "salbutamol", "2 puffs as needed"),
    ("hypothyroidism", "levothyroxine", "100 micrograms every morning"), ("heart failure", "furosemide", "40 mg daily"),
    ("osteoarthritis", "ibuprofen", "400 mg three times daily"),
    ("major depressive disorder", "sertraline", "50 mg once daily"),
    ("gastroesophageal reflux", "omeprazole", "20 mg once daily"),
    ("hyperlipidaemia", "atorvastatin", "20 mg at night"),
]
_TEMPLATES = [
    "Patient with {PROBLEM} started on {MEDICATION} {DOSAGE}.",
    "History of {PROBLEM}; continue {MEDICATION} {DOSAGE}.",
    "{MEDICATION} {DOSAGE} prescribed for {PROBLEM}.",
    "Presented with worsening {PROBLEM}. Increased {MEDICATION} to {DOSAGE}.",
    "Discharged on {MEDICATION} {DOSAGE}; follow up for {PROBLEM} in two weeks.",
    "Known {PROBLEM}, well controlled on {MEDICATION}.",
    "Stopped {MEDICATION} {DOSAGE} after review of {PROBLEM}.",
    "Reviewed today. No changes to {MEDICATION}.",
    "Follow-up visit for {PROBLEM}, no acute complaints.",
    "Routine check, no new symptoms reported.",
]


def _fill(template: str, case: tuple[str, str, str]) -> dict:
    values = dict(zip(("PROBLEM", "MEDICATION", "DOSAGE"), case))
    text, entities = "", []
    for part in re.split(r"(\{[A-Z]+\})", template):
        if part.startswith("{"):
            label = part[1:-1]
            value = values[label] if text else values[label][0].upper() + values[label][1:]
            entities.append({"start": len(text), "end": len(text) + len(value), "label": label})
            text += value
        else:
            text += part
    return {"text": text, "entities": entities}


def notes_ner(examples: int = 40, seed: int = 0) -> list[dict]:
    """Short synthetic clinical sentences with PROBLEM, MEDICATION and DOSAGE character spans."""
    rng = random.Random(seed)
    return [_fill(_TEMPLATES[i % len(_TEMPLATES)], rng.choice(_CASES)) for i in range(examples)]


_NOTE_TEMPLATES = [
    "Seen in clinic for {PROBLEM}. Taking {MEDICATION} {DOSAGE}, tolerating well.",
    "Ward round: {PROBLEM} stable overnight, observations within normal limits.",
    "Pharmacy review of {MEDICATION}; dose confirmed as {DOSAGE}.",
    "Telephone follow-up. Symptoms of {PROBLEM} improving, plan to continue {MEDICATION}.",
    "Admitted with an exacerbation of {PROBLEM}. Bloods sent, chest clear on auscultation.",
    "GP letter: please review {MEDICATION} at the next appointment.",
    "Patient reports good adherence to {MEDICATION} and no side effects.",
    "Nursing note: comfortable, eating and drinking, mobilising with a frame.",
    "Discharge summary: {PROBLEM}, medication unchanged, follow up in clinic in six weeks.",
    "Plan discussed with the patient and family, who agree with the management of {PROBLEM}.",
]


def notes_unlabelled(notes: int = 60, seed: int = 0) -> list[str]:
    """Short synthetic clinical notes, one a line and without labels: the corpus for the mlm task."""
    rng = random.Random(seed)
    out = []
    for i in range(notes):
        values = dict(zip(("PROBLEM", "MEDICATION", "DOSAGE"), rng.choice(_CASES)))
        out.append(_NOTE_TEMPLATES[i % len(_NOTE_TEMPLATES)].format(**values))
    return out


IMAGE_MIX = {"normal": 0.4, "nodule": 0.3, "effusion": 0.3}  # single-label: no "both" images


def image_phantoms(n: int = 48, size: int = 128, seed: int = 0) -> bytes:
    """A zip of class folders (normal/, nodule/, effusion/) of phantom chest films; every third one a PNG.

    Built from medui.imaging.phantom (DICOM CR files) and, for the PNGs, the imaging display pipeline, with fixed
    member timestamps so the bytes depend on (n, size, seed) only.
    """
    import csv
    import io
    import tempfile
    import zipfile

    from PIL import Image

    from medui.imaging import open_image
    from medui.imaging.phantom import generate

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        labels = generate(n, seed, Path(tmp), size, mix=IMAGE_MIX)
        with labels.open(encoding="utf-8") as handle:
            first = {}
            for row in csv.DictReader(handle):
                first.setdefault(row["file"], row["label"])
        for i, (name, label) in enumerate(sorted(first.items())):
            data = (Path(tmp) / name).read_bytes()
            if i % 3 == 2:
                png = io.BytesIO()
                Image.fromarray(open_image(data, name)[2].image).save(png, format="PNG", optimize=True)
                name, data = name.replace(".dcm", ".png"), png.getvalue()
            info = zipfile.ZipInfo(f"{label}/{name}", date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def write_samples(folder: Path = SAMPLES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image_phantoms.zip").write_bytes(image_phantoms())
    np.savez_compressed(folder / "ecg_rhythm.npz", **ecg_rhythm())
    lines = (json.dumps(row, ensure_ascii=False) for row in notes_ner())
    (folder / "notes_ner.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes_unlabelled.txt").write_text("\n".join(notes_unlabelled()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_samples()
    print(f"wrote {SAMPLES / 'ecg_rhythm.npz'}, {SAMPLES / 'notes_ner.jsonl'}, {SAMPLES / 'notes_unlabelled.txt'} "
          f"and {SAMPLES / 'image_phantoms.zip'}")
