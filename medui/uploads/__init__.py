"""The one upload guard every page and the CLI run on a file before anything parses it further.

Types are decided by content, never by the file's name; sizes are limited per kind; the server-side name is random;
archives are checked before extraction (see `archives`). Uploaded text is returned as text and must never be rendered
as HTML. Every refusal is an UploadRejected whose message can be shown to the user as-is.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from medui.uploads.archives import ArchiveEntry, extract_zip, inspect_zip
from medui.uploads.detect import DETECTORS, decode_text
from medui.uploads.errors import MB, UploadRejected, mb, with_article

__all__ = [
    "KINDS",
    "ArchiveEntry",
    "CheckedUpload",
    "UploadKind",
    "UploadRejected",
    "check_upload",
    "decode_text",
    "extract_zip",
    "inspect_zip",
]


@dataclass(frozen=True)
class UploadKind:
    """A kind of upload: its key, its size limit in bytes, and a noun phrase for messages ('DICOM file')."""

    name: str
    max_bytes: int
    description: str


KINDS: dict[str, UploadKind] = {
    k.name: k
    for k in (
        UploadKind("dicom", 512 * MB, "DICOM file"),
        UploadKind("zip", 1024 * MB, "ZIP archive"),
        UploadKind("csv", 100 * MB, "CSV table"),
        UploadKind("text", 5 * MB, "text file"),
        UploadKind("image", 50 * MB, "PNG or JPEG image"),
        UploadKind("edf", 200 * MB, "EDF recording"),
        UploadKind("wfdb_header", 1 * MB, "WFDB header"),
        UploadKind("safetensors", 2048 * MB, "safetensors model"),
    )
}


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed the guard; only safe_name may ever become part of a server-side path."""

    kind: str
    original_name: str  # as the user sent it, for display only, never used as a path
    safe_name: str  # uuid4 hex + the extension of the detected type
    size: int
    sha256: str
    data: bytes

    def __repr__(self) -> str:  # keep megabytes of data out of logs and tracebacks
        return f"CheckedUpload(kind={self.kind!r}, safe_name={self.safe_name!r}, size={self.size})"


def check_upload(data: bytes, original_name: str, kind: str) -> CheckedUpload:
    """Check an upload's size and content against its kind; raise UploadRejected with a short message if it fails."""
    spec = KINDS.get(kind)
    if spec is None:
        raise UploadRejected(f"Unknown upload kind '{kind[:40]}'.")
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > spec.max_bytes:
        raise UploadRejected(
            f"The file is {mb(len(data))}, over the {mb(spec.max_bytes)} limit for {with_article(spec.description)}."
        )
    extension = DETECTORS[kind](data)
    return CheckedUpload(
        kind=kind,
        original_name=original_name,
        safe_name=uuid.uuid4().hex + extension,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
