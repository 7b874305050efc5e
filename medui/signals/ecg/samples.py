"""One-click ECG samples: pydicom's real 12-lead recording."""

from __future__ import annotations

from pathlib import Path

from medui import samples


def _pydicom_ecg() -> Path | None:
    from pydicom.data import get_testdata_file

    try:
        found = get_testdata_file("waveform_ecg.dcm", download=False)
    except Exception:  # noqa: BLE001 -- pydicom raises various errors for a missing optional file
        return None
    return Path(found) if found and Path(found).exists() else None


if (_path := _pydicom_ecg()) is not None:
    samples.register(samples.Sample(
        page="ecg", key="pydicom-12-lead", title="12-lead resting ECG (10 s, 1000 Hz)",
        description="A real, de-identified 12-lead DICOM waveform shipped with pydicom",
        filename="waveform_ecg.dcm", origin="real recording shipped with pydicom", load=_path.read_bytes))
