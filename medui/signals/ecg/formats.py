"""ECG readers: CSV, WFDB, EDF/EDF+ and DICOM waveforms into one EcgRecord in millivolts, detected from content.

The sampling rate is never guessed: it comes from the file (header, time column) or from the caller, and a missing,
contradictory or implausible rate is refused. Every refusal is a ValueError (or UploadRejected from the upload guard)
with a one-line message that the page and the CLI show as-is.
"""

from __future__ import annotations

import io
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medui.uploads import KINDS, UploadRejected, check_upload, decode_text
from medui.uploads.detect import describe
from medui.uploads.errors import MB

FS_RANGE = (50.0, 10000.0)  # below 50 Hz the QRS is not resolved; above 10 kHz is not a diagnostic ECG
MIN_SECONDS = 2.0  # fewer than ~2 beats cannot give a rate
UV_RANGE = 30.0  # a 1st-99th percentile range above this (in unlabelled units) is microvolts: ECGs span a few mV
UNIT_FACTORS = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
UNIT_LABELS = {"mv": "mV", "uv": "µV", "µv": "µV", "μv": "µV", "v": "V", "nv": "nV"}
TIME_NAMES = {"time", "t", "timestamp", "times", "datetime", "date", "seconds", "sec", "s", "ms", "msec",
              "milliseconds", "elapsed", "time_s", "time_ms", "t_s", "t_ms", "time(s)", "time(ms)", "time [s]",
              "time [ms]", "time (s)", "time (ms)", "elapsed time"}
# DICOM "Lead I (Einthoven)", "Lead aVR", "Lead V1" -> I, aVR, V1
_DICOM_LEAD = re.compile(r"^lead\s+([a-z0-9]+)", re.IGNORECASE)


@dataclass
class EcgRecord:
    """A recording: `signals` [leads, samples] in mV, `fs` in Hz, one name per lead, and how units were decided."""

    signals: np.ndarray
    fs: float
    lead_names: list[str]
    units_note: str
    source: str  # "csv", "wfdb", "edf" or "dicom"
    notes: list[str] = field(default_factory=list)  # what was done to the data, for the reader to see

    @property
    def duration_s(self) -> float:
        return self.signals.shape[1] / self.fs


def check_fs(fs: float, where: str) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or not FS_RANGE[0] <= fs <= FS_RANGE[1]:
        raise ValueError(f"The sampling rate {fs:g} Hz ({where}) is outside {FS_RANGE[0]:g}-{FS_RANGE[1]:g} Hz.")
    return fs


def _finish(signals: np.ndarray, fs: float, names: list[str], units_note: str, source: str,
            notes: list[str] | None = None) -> EcgRecord:
    """The checks every format shares: finite values, enough samples, one name per lead."""
    signals = np.atleast_2d(np.asarray(signals, dtype=np.float64))
    if signals.shape[0] == 0 or signals.shape[1] == 0:
        raise ValueError("The recording has no samples.")
    bad = ~np.isfinite(signals)
    if bad.any():
        lead, sample = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"Lead {names[lead] if lead < len(names) else lead + 1} has a missing or infinite value "
                         f"at sample {sample}: ECG analysis needs a complete recording.")
    if signals.shape[1] / fs < MIN_SECONDS:
        raise ValueError(f"The recording is {signals.shape[1] / fs:.2f} s long: at least {MIN_SECONDS:g} s is needed.")
    return EcgRecord(signals, fs, list(names), units_note, source, list(notes or []))


# ---------------------------------------------------------------- CSV


def _unit_of(name: str) -> float | None:
    """The mV factor a column header states, e.g. 'II (uV)', 'V1_mV', 'lead [µV]'; None when it states none."""
    match = re.search(r"(?:^|[\s_\(\[])(mv|uv|µv|μv|nv)(?:$|[\s\)\]])", name.strip().lower())
    return UNIT_FACTORS[match.group(1)] if match else None


def _lead_name(name: str) -> str:
    return re.sub(r"[\s_]*[\(\[]?\s*(mv|uv|µv|μv|nv)\s*[\)\]]?$", "", name.strip(), flags=re.IGNORECASE) or name


def _time_fs(column: pd.Series, name: str) -> tuple[float, str]:
    """The sampling rate a time column implies: timestamps, or numbers in s or ms (from its name, else its step)."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        steps = np.diff(numbers.to_numpy(dtype=float))
        lowered = name.lower()
        if "ms" in lowered or "milli" in lowered:
            scale, unit, why = 1e-3, "ms", "its name"
        elif re.search(r"(^|[\s_\(\[])(s|sec|seconds)($|[\s\)\]])", lowered):
            scale, unit, why = 1.0, "s", "its name"
        else:
            # An unlabelled step of 0.5 or more cannot be seconds (that would be under 2 Hz): it is milliseconds.
            ms = np.median(steps) >= 0.5
            scale, unit, why = (1e-3, "ms", "its step") if ms else (1.0, "s", "its step")
        seconds = steps * scale
    else:
        times = pd.to_datetime(column, errors="coerce", format="ISO8601")
        if times.isna().any():
            raise ValueError(f"The time column {name!r} holds values that are neither numbers nor timestamps.")
        seconds = np.diff(times.to_numpy(dtype="datetime64[ns]").astype(np.int64)) / 1e9
        unit, why = "timestamps", "their values"
    step = float(np.median(seconds))
    if step <= 0 or np.any(seconds <= 0):
        raise ValueError(f"The time column {name!r} does not increase steadily.")
    if np.max(np.abs(seconds - step)) > 0.01 * step + 1e-6:  # 1%: jitter beyond rounding means gaps or resampling
        raise ValueError(f"The time column {name!r} is not evenly spaced: resample the recording first.")
    return 1.0 / step, f"time column {name!r} in {unit} (decided from {why})"


def _is_time(name: str, column: pd.Series, index: int) -> bool:
    if name.strip().lower() in TIME_NAMES:
        return True
    # An unnamed first column that is a timestamp counts too; a numeric first column without a time name does not,
    # because it may be a lead.
    return index == 0 and pd.to_numeric(column, errors="coerce").isna().all() and \
        pd.to_datetime(column, errors="coerce", format="ISO8601").notna().all()


def read_csv(data: bytes, name: str, fs: float | None) -> EcgRecord:
    text = decode_text(data)
    lines = text.splitlines()
    # Leading comments and blank lines are a preamble; a blank line among the samples is a gap and is refused below.
    skip = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")), len(lines))
    first = lines[skip] if skip < len(lines) else ""
    delimiter = max(",;\t", key=first.count)
    if first.count(delimiter):
        check_upload(data, name, "csv")
    elif len(data) > KINDS["csv"].max_bytes:  # a one-lead table has no delimiter, which the CSV guard requires
        raise UploadRejected(f"The file is over the {KINDS['csv'].max_bytes // MB} MB limit for a CSV table.")
    body = "\n".join(lines[skip:]).rstrip()
    if not body:
        raise ValueError("The CSV table has no rows.")
    try:
        frame = pd.read_csv(io.StringIO(body), sep=delimiter, header=None, dtype=str, skip_blank_lines=False,
                            skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ValueError(f"This CSV table cannot be read: {str(exc).splitlines()[0][:120]}") from None
    header = [str(v).strip() for v in frame.iloc[0]]
    has_header = pd.to_numeric(pd.Series(header), errors="coerce").isna().any()
    if has_header:
        frame = frame.iloc[1:].reset_index(drop=True)
    else:
        header = [f"lead{i + 1}" for i in range(frame.shape[1])]
    frame = frame.fillna("")
    numeric = frame.apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce").notna().mean())
    if len(frame) and not (numeric >= 0.5).any():  # mostly words: prose or another table, not samples
        raise ValueError("This is not a CSV table of ECG samples (its columns do not hold numbers).")
    if len(frame) < 2:
        raise ValueError("The CSV table has fewer than two rows of samples.")
    notes: list[str] = []
    time_cols = [i for i, h in enumerate(header) if _is_time(h, frame.iloc[:, i], i)]
    file_fs = None
    if time_cols:
        file_fs, how = _time_fs(frame.iloc[:, time_cols[0]].str.strip(), header[time_cols[0]])
        notes.append(f"sampling rate {file_fs:.6g} Hz from the {how}")
        if fs is not None and abs(fs - file_fs) > 0.01 * file_fs:
            raise ValueError(f"--fs {fs:g} Hz contradicts the time column, which implies {file_fs:.6g} Hz.")
    if file_fs is None and fs is None:
        raise ValueError("The sampling rate is unknown: the CSV has no time column, pass --fs.")
    rate = check_fs(file_fs if file_fs is not None else fs, "from the time column" if file_fs else "given")
    leads = [i for i in range(len(header)) if i not in time_cols]
    if not leads:
        raise ValueError("The CSV table has no lead columns.")
    values = frame.iloc[:, leads].apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    raw = frame.iloc[:, leads]
    # Blank or NaN cells and words are both refused, with the line, so the user can find them.
    bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        line = row + 1 + int(has_header) + skip
        raise ValueError(f"Line {line}, column {header[leads[col]]!r}: {str(raw.iat[row, col])[:20]!r} is not a "
                         "finite number: ECG analysis needs a complete recording.")
    signals = values.to_numpy(dtype=float).T
    factors = [_unit_of(header[i]) for i in leads]
    if all(f is not None for f in factors):
        signals = signals * np.array(factors)[:, None]
        units_note = "units from the column headers, converted to mV"
    elif any(f is not None for f in factors):
        raise ValueError("Some lead columns state their units and others do not: label all of them.")
    else:
        span = float(np.median(np.percentile(signals, 99, axis=1) - np.percentile(signals, 1, axis=1)))
        if span > UV_RANGE:
            signals = signals / 1000.0
            units_note = f"µV detected from the amplitude (typical range {span:.0f}), converted to mV"
        else:
            units_note = f"mV assumed from the amplitude (typical range {span:.2f})"
    return _finish(signals, rate, [_lead_name(header[i]) for i in leads], units_note, "csv", notes)


# ---------------------------------------------------------------- WFDB


def _dat_names(header: str) -> list[str]:
    """The signal files a header names (the first field of each signal line)."""
    lines = [ln for ln in header.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return sorted({ln.split()[0] for ln in lines[1:]})


def read_wfdb(data: bytes, name: str, fs: float | None, extra: dict[str, bytes]) -> EcgRecord:
    import wfdb

    check_upload(data, name, "wfdb_header")
    header = decode_text(data)
    record_line = next(ln for ln in header.splitlines() if ln.strip() and not ln.lstrip().startswith("#")).split()
    if "/" in record_line[0]:
        raise ValueError("Multi-segment WFDB records are not supported: convert the record to a single segment.")
    record = re.sub(r"[^A-Za-z0-9_-]", "_", record_line[0])
    files = {Path(k).name: v for k, v in extra.items()}
    with tempfile.TemporaryDirectory(prefix="medui-wfdb-") as tmp:
        for dat in _dat_names(header):
            if Path(dat).name != dat or dat.startswith("."):  # the header names files: never let it name a path
                raise ValueError(f"The WFDB header names an unsafe signal file {dat[:40]!r}.")
            if dat not in files:
                raise ValueError(f"The WFDB signal file {dat!r} is missing: upload it with the header.")
            (Path(tmp) / dat).write_bytes(files[dat])
        (Path(tmp) / f"{record}.hea").write_text(header.replace(record_line[0], record, 1))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = wfdb.rdrecord(str(Path(tmp) / record))
        except Exception as exc:  # noqa: BLE001 -- wfdb fails on damaged input in many ways; say so in one line
            raise ValueError(f"The WFDB record cannot be read: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}") from None
    if rec.p_signal is None:
        raise ValueError("The WFDB record has no signals.")
    file_fs = float(rec.fs)
    if fs is not None and abs(fs - file_fs) > 0.01 * file_fs:
        raise ValueError(f"--fs {fs:g} Hz contradicts the WFDB header, which says {file_fs:g} Hz.")
    units = [str(u or "").strip().lower() for u in rec.units]
    unknown = sorted({u for u in units if u not in UNIT_FACTORS})
    if unknown:
        raise ValueError(f"The WFDB record has signals in units {', '.join(unknown)[:40]}, not volts.")
    signals = rec.p_signal.T * np.array([UNIT_FACTORS[u] for u in units])[:, None]
    note = "units " + "/".join(sorted({UNIT_LABELS[u] for u in units})) + " from the WFDB header" + \
        ("" if set(units) == {"mv"} else ", converted to mV")
    return _finish(signals, check_fs(file_fs, "WFDB header"), list(rec.sig_name), note, "wfdb")


# ---------------------------------------------------------------- EDF


def read_edf(data: bytes, name: str, fs: float | None) -> EcgRecord:
    import edfio

    check_upload(data, name, "edf")
    try:
        edf = edfio.read_edf(data)
        picked = []
        for signal in edf.signals:
            factor = UNIT_FACTORS.get(signal.physical_dimension.strip().lower())
            if factor is not None:  # skip non-voltage channels (SpO2, respiration in other units, markers)
                picked.append((signal, factor))
    except Exception as exc:  # noqa: BLE001 -- edfio raises on damaged headers in many ways
        raise ValueError(f"The EDF recording cannot be read: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}") from None
    if not picked:
        raise ValueError("The EDF recording has no signal in volts (mV, uV or V).")
    notes = []
    rate = picked[0][0].sampling_frequency
    kept = [(s, f) for s, f in picked if s.sampling_frequency == rate]
    if len(kept) < len(picked):  # leads at another rate cannot share one array; say which were dropped
        notes.append(f"signals at other rates than {rate:g} Hz were left out: "
                     + ", ".join(s.label for s, _ in picked if s.sampling_frequency != rate))
    if fs is not None and abs(fs - rate) > 0.01 * rate:
        raise ValueError(f"--fs {fs:g} Hz contradicts the EDF header, which says {rate:g} Hz.")
    length = min(len(s.data) for s, _ in kept)
    signals = np.stack([s.data[:length] * f for s, f in kept])
    units = sorted({s.physical_dimension.strip() for s, _ in kept})
    note = f"units {'/'.join(units)} from the EDF header" + ("" if units == ["mV"] else ", converted to mV")
    return _finish(signals, check_fs(rate, "EDF header"), [s.label for s, _ in kept], note, "edf", notes)


# ---------------------------------------------------------------- DICOM


def read_dicom(data: bytes, name: str, fs: float | None) -> EcgRecord:
    import pydicom

    check_upload(data, name, "dicom")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            group = ds.WaveformSequence[0]
            array = ds.waveform_array(0)  # [samples, channels], channel sensitivity applied
    except Exception:  # noqa: BLE001 -- a DICOM without a usable waveform fails in many ways
        raise ValueError("This DICOM file holds no readable waveform (is it an image?).") from None
    file_fs = float(group.SamplingFrequency)
    if fs is not None and abs(fs - file_fs) > 0.01 * file_fs:
        raise ValueError(f"--fs {fs:g} Hz contradicts the DICOM header, which says {file_fs:g} Hz.")
    names, factors, units = [], [], set()
    for i, channel in enumerate(group.ChannelDefinitionSequence):
        meaning = str(channel.ChannelSourceSequence[0].CodeMeaning) if "ChannelSourceSequence" in channel else ""
        match = _DICOM_LEAD.match(meaning)
        names.append(match.group(1).replace("AVR", "aVR").replace("AVL", "aVL").replace("AVF", "aVF")
                     if match else meaning or f"channel{i + 1}")
        unit = "uv"
        if "ChannelSensitivityUnitsSequence" in channel:
            unit = str(channel.ChannelSensitivityUnitsSequence[0].CodeValue).strip().lower()
        if unit not in UNIT_FACTORS:
            raise ValueError(f"DICOM channel {names[-1]!r} is in {unit[:20]!r}, not volts.")
        units.add(unit)
        factors.append(UNIT_FACTORS[unit])
    signals = array.T.astype(np.float64) * np.array(factors)[:, None]
    note = "units " + "/".join(sorted(UNIT_LABELS[u] for u in units)) + " from the DICOM channel definitions" + \
        ("" if units == {"mv"} else ", converted to mV")
    return _finish(signals, check_fs(file_fs, "DICOM header"), names, note, "dicom")


# ---------------------------------------------------------------- dispatch


def _looks_like_wfdb_header(data: bytes) -> bool:
    try:
        text = data[:4096].decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    line = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    fields = line.split()
    # "name n_signals fs n_samples": whitespace-separated, second field an integer, no CSV delimiters.
    return len(fields) >= 2 and fields[1].isdigit() and not any(d in line for d in ",;\t")


def read_bytes(data: bytes, name: str, fs: float | None = None, extra: dict[str, bytes] | None = None) -> EcgRecord:
    """Dispatch on content: DICOM, EDF, WFDB header, or CSV; anything else is refused with what it looks like."""
    if fs is not None:
        fs = check_fs(fs, "given")
    if not data:
        raise UploadRejected("The file is empty.")
    if data[128:132] == b"DICM":
        return read_dicom(data, name, fs)
    if data.startswith(b"0       "):
        return read_edf(data, name, fs)
    looks = describe(data)
    if looks != "text" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text (BOM) is read as CSV
        raise ValueError("This is not an ECG recording (CSV, WFDB, EDF or DICOM)"
                         + (f": it looks like {looks}." if looks else "."))
    if _looks_like_wfdb_header(data):
        return read_wfdb(data, name, fs, extra or {})
    return read_csv(data, name, fs)


def read_path(path: Path, fs: float | None = None) -> EcgRecord:
    """A file path; a WFDB record may be given as its .hea or as the record path without extension."""
    if not path.exists() and path.with_suffix(".hea").exists():
        path = path.with_suffix(".hea")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"Cannot read {path.name}: {exc.strerror or exc}") from None
    extra: dict[str, bytes] = {}
    if _looks_like_wfdb_header(data):
        for dat in _dat_names(data.decode("utf-8", errors="replace")):
            candidate = path.parent / Path(dat).name
            if candidate.is_file():
                extra[candidate.name] = candidate.read_bytes()
    return read_bytes(data, path.name, fs, extra)
