"""Electrocardiograms: read CSV, WFDB, EDF/EDF+ or DICOM waveforms, analyse one lead with NeuroKit2.

    record = read_ecg(data, "ecg.csv", fs=None)   # ValueError / UploadRejected with a one-line reason
    result = analyse(record)                       # the CLI's JSON plus "beats" and "cleaned" for the page
    # over 10 minutes (holter.LONG_RECORD_S): a chunked Holter summary instead, under result["holter"]

No plotting here: the page draws from `record.signals`, `result["cleaned"]` and `result["beats"]`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medui.signals.ecg.analysis import NO_RHYTHM, analyse_long, analyse_record, chunk_peaks
from medui.signals.ecg.formats import FS_RANGE, EcgRecord, read_bytes, read_path

__all__ = ["FS_RANGE", "NO_RHYTHM", "EcgRecord", "analyse", "analyse_long", "chunk_peaks", "read_ecg"]


def read_ecg(data: bytes | Path, name: str, fs: float | None = None, extra: dict[str, bytes] | None = None) -> EcgRecord:
    """Read a recording from bytes (an upload; `extra` maps file names to the .dat files of a WFDB header) or a path.

    `fs` is required only for a CSV without a time column; where the file states its rate, a contradicting `fs` is
    refused rather than either value silently winning.
    """
    if isinstance(data, Path):
        return read_path(data, fs)
    return read_bytes(data, name, fs, extra)


def analyse(record: EcgRecord, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Analyse the record's rhythm lead (II, else the best-quality lead); see analysis.analyse_record for the keys.

    Recordings longer than holter.LONG_RECORD_S get holter.analyse_holter's chunked summary (same keys plus
    "holter"), with `progress(fraction)` after every chunk.
    """
    from medui.signals.ecg import holter

    if holter.is_long(record):
        return holter.analyse_holter(record, progress)
    return analyse_record(record)
