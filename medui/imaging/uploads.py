"""Uploads for the imaging page: single DICOM files, several, or ZIPs of a series → studies, plus what was refused.

Every file goes through the upload guard (`medui.uploads.check_upload`) before it is parsed; a ZIP is checked as a
whole, then extracted into a temporary folder (zip-slip, bombs, nesting refused by `extract_zip`). A bad file never
raises: it comes back as (name, message), the message short and safe to show.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from medui.imaging.decode import ImageRefused, read
from medui.imaging.series import Study, organise
from medui.uploads import UploadRejected, check_upload, extract_zip
from medui.uploads.errors import shown

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _is_zip(name: str, data: bytes) -> bool:
    return data[:4] in ZIP_MAGIC or name.lower().endswith(".zip")


def load_uploads(items: list[tuple[str, bytes]]) -> tuple[list[Study], list[tuple[str, str]]]:
    """(name, bytes) uploads → (studies organised from every readable file, [(name, message)] for each refused)."""
    datasets: list[tuple[str, object]] = []
    refused: list[tuple[str, str]] = []
    for name, data in items:
        label = shown(name or "upload")
        if not _is_zip(name or "", data):
            try:
                datasets.append((label, read(data, name or "upload.dcm")))
            except (ImageRefused, UploadRejected) as exc:
                refused.append((label, str(exc)))
            continue
        try:
            check_upload(data, name or "upload.zip", "zip")
            with tempfile.TemporaryDirectory(prefix="medui-imaging-") as tmp:
                root = Path(tmp).resolve()
                for path in sorted(extract_zip(data, root)):
                    inner = f"{label}/{shown(path.relative_to(root).as_posix())}"
                    try:
                        datasets.append((inner, read(path.read_bytes(), path.name)))
                    except (ImageRefused, UploadRejected) as exc:
                        refused.append((inner, str(exc)))
        except (ImageRefused, UploadRejected) as exc:
            refused.append((label, str(exc)))
        except OSError:  # disk full or similar while extracting: the archive, not the app, fails
            refused.append((label, "The ZIP archive could not be unpacked on the server."))
    return organise(datasets), refused
