"""ECG datasets of recording files: a .zip of class folders (`sinus/r1.csv`) or a .csv manifest (`path,label`
and an optional `fs` column, paths relative to the manifest).

Each recording is read by medui.signals.ecg.formats (CSV with one column per lead; WFDB, EDF and DICOM files work
too), so units, time columns and refusals are the ECG page's. The sampling rate comes from the file (a time
column or header), else the manifest's `fs`, else the spec's `fs`; none of them is an error. Recordings are then
brought to the model's window the way serving does (medui.signals.ecg.rhythm): resampled to the window's rate,
a longer record cut to its centre window, a shorter one padded by repeating its edges.
The window is the registered base's (architecture.json), or 10 s at 100 Hz for a fresh net (the shipped model's).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from medui.training.data import Examples, check_counts, settle_rejections
from medui.training.errors import DatasetError, SpecError

DEFAULT_FS = 100.0
DEFAULT_SECONDS = 10.0


def window(spec: Any) -> tuple[float, int, int | None]:
    """(rate, samples, leads or None) the recordings are brought to: the registered base's, or the default."""
    from medui.training.artifacts import ARCHITECTURE
    from medui.training.bases import SCRATCH_ID, resolve_base

    if spec.base in ("default", "", SCRATCH_ID):
        return DEFAULT_FS, round(DEFAULT_FS * DEFAULT_SECONDS), None
    base = resolve_base("ecg", spec.base, ("ecg",))
    try:
        arch = json.loads((base.version.directory / ARCHITECTURE).read_text(encoding="utf-8"))["arch"]
    except (OSError, ValueError, KeyError):
        raise SpecError(f"base {base.id} was not trained by medui.training: its input window is unknown") from None
    return float(arch.get("fs") or DEFAULT_FS), int(arch["samples"]), int(arch["leads"])


def _manifest_rates(path: Path) -> list[float | str | None]:
    """Per manifest row, in order: its `fs` (Hz), None when the column is absent or blank, or why it is unusable."""
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    column = next((c for c in reader.fieldnames or [] if (c or "").strip().lower() == "fs"), None)
    rates: list[float | str | None] = []
    for line, row in enumerate(reader, start=2):
        raw = (row.get(column) or "").strip() if column else ""
        try:
            rates.append(float(raw) if raw else None)
        except ValueError:
            rates.append(f"line {line}: fs {raw!r} is not a number")
    return rates


def _fit(signals: np.ndarray, fs: float, rate: float, samples: int) -> tuple[np.ndarray, str | None]:
    """One recording at the window's rate and length; says whether it was cut or padded."""
    from medui.signals.ecg.rhythm import _resample  # the very resampling serving applies

    x = _resample(signals, fs, rate)
    n = x.shape[-1]
    if n < samples:
        return np.pad(x, ((0, 0), (0, samples - n)), mode="edge"), "padded"
    start = (n - samples) // 2
    return x[:, start:start + samples], "cut" if n > samples else None


def read_recordings(path: Path, spec: Any) -> Examples:
    """Examples (float32 [leads, samples] per recording) from a zip of class folders or a CSV manifest."""
    from medui.signals.ecg.formats import read_bytes
    from medui.training.tasks.image import ImageTask  # its zip/manifest listing is format-neutral
    from medui.uploads.errors import UploadRejected

    rate, samples, base_leads = window(spec)
    archive = None
    if path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path.name}: not a readable zip file ({exc})") from None
    try:
        if archive:
            entries = ImageTask._zip_entries(path, archive)
            rates: list[Any] = [None] * len(entries)
        else:
            try:
                entries, rates = ImageTask._csv_entries(path), _manifest_rates(path)
            except UnicodeDecodeError:
                raise DatasetError(f"{path.name}: the manifest is not UTF-8 text") from None
        read, rejected = [], []
        for row, ((name, label, load), row_fs) in enumerate(zip(entries, rates), start=1):
            reason = load if isinstance(load, str) else row_fs if isinstance(row_fs, str) else None
            if reason is None:
                fs = row_fs or spec.fs or None
                try:
                    read.append((row, name, label, read_bytes(load(), name, fs)))
                except (ValueError, UploadRejected, OSError, zipfile.BadZipFile) as exc:
                    reason = str(exc).replace("pass --fs", "give fs in the manifest or the job spec")
            if reason:
                rejected.append({"row": row, "file": name, "reason": f"{name}: {reason}"})
    finally:
        if archive:
            archive.close()
    if not read and not rejected:
        raise DatasetError(f"{path.name}: no recordings")
    found = Counter(record.signals.shape[0] for *_, record in read)
    leads = base_leads or (found.most_common(1)[0][0] if found else 0)
    items, keys, fitted = [], [], Counter()
    for row, name, label, record in read:
        reason = None
        if record.signals.shape[0] != leads:
            reason = f"{record.signals.shape[0]} leads; " + (f"the base model reads {leads}" if base_leads
                                                              else f"the other recordings have {leads}")
        elif np.all(record.signals.std(axis=-1) == 0):
            reason = "flat signal (every lead is constant)"
        if reason:
            rejected.append({"row": row, "file": name, "reason": f"{name}: {reason}"})
            continue
        signal, how = _fit(record.signals, record.fs, rate, samples)
        fitted[how or "exact"] += 1
        items.append(signal.astype(np.float32))
        keys.append(label)
    settle_rejections(rejected, spec.skip_bad_rows)
    counts = dict(sorted(Counter(keys).items()))
    check_counts(counts)
    return Examples(items=items, keys=keys, labels=sorted(counts), counts=counts, rows=len(entries),
                    rejected=rejected, info={"leads": leads, "samples": samples, "fs": rate,
                                             "recordings": dict(fitted), "source_rates": sorted(
                                                 {round(record.fs, 6) for *_, record in read})})
