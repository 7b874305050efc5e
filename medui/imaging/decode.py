"""Reading DICOM and decoding its pixels: every refusal is an ImageRefused with a reason key and a message to show.

Decoder plugins are chosen per transfer syntax by licence first, then by coverage and speed. All the plugins we
ship are permissive: pydicom's own native/RLE decoders (MIT), pylibjpeg + pylibjpeg-openjpeg + pylibjpeg-rle (MIT,
OpenJPEG is BSD-2), python-gdcm (BSD-3) and Pillow (MIT-CMU). pylibjpeg-libjpeg is GPL-3 and is never asked for, even
if someone installs it: pydicom routes JPEG baseline/extended/lossless/LS through it under the "pylibjpeg" plugin
name, so those syntaxes simply do not list "pylibjpeg". Without it nothing here decodes 12-bit JPEG Extended.

Time and memory bound: uncompressed ("native") pixels are a reshape of bytes whose length check_geometry has
already bounded, so they decode here. Compressed pixels go to C decoders that trust the code stream's own header
(a JPEG 2000 stream whose SIZ claims 60000×60000 made OpenJPEG allocate 7.4 GB and spend 50 s before failing), so
they decode in a forked worker process with an address-space limit sized from the DICOM header and a wall-clock
timeout; a hang, a runaway allocation or a crash in the decoder costs that worker, not the app.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import resource
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from medui.uploads import KINDS, UploadRejected, check_upload

MAX_PIXEL_BYTES = 1024**3  # refuse before decoding: one decoded copy of more than this would not fit a worker
DECODE_TIMEOUT_S = 30.0  # a 2k×2k JPEG 2000 radiograph decodes in well under a second here: 30 s means a hang
# The worker may map its inherited libraries plus this many times the declared pixel bytes (the decoded array, a
# colour-converted copy and the pickled reply), and never less than WORKER_MIN_HEADROOM beyond them.
WORKER_MEMORY_FACTOR, WORKER_MIN_HEADROOM = 4, 256 * 1024**2
NATIVE = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)
# Preferred order per syntax. Pillow beats GDCM ~4x on baseline JPEG (color3d_jpeg_baseline: 1.6 s vs 6.8 s);
# OpenJPEG via pylibjpeg is the reference J2K decoder and the only HTJ2K one; GDCM alone does lossless JPEG and JPEG-LS.
PLUGIN_ORDER: dict[str, tuple[str, ...]] = {
    **{uid: ("",) for uid in NATIVE},  # "" = pydicom's built-in native decoder
    RLELossless: ("pylibjpeg", "pydicom"),
    JPEGBaseline8Bit: ("pillow", "gdcm"),
    JPEGExtended12Bit: ("pillow", "gdcm"),  # 8-bit samples only; 12-bit is refused in _check_syntax
    JPEGLossless: ("gdcm",),
    JPEGLosslessSV1: ("gdcm",),
    JPEGLSLossless: ("gdcm",),
    JPEGLSNearLossless: ("gdcm",),
    JPEG2000Lossless: ("pylibjpeg", "gdcm", "pillow"),
    JPEG2000: ("pylibjpeg", "gdcm", "pillow"),
    HTJ2KLossless: ("pylibjpeg",),
    HTJ2KLosslessRPCL: ("pylibjpeg",),
    HTJ2K: ("pylibjpeg",),
}
REASONS = (
    "upload_rejected", "unreadable", "dicomdir", "dicomdir_path", "no_pixels", "missing_attribute", "too_large",
    "truncated", "dimension_mismatch", "unsupported_syntax", "gpl_decoder_required", "decode_failed", "bad_frame",
    "unsupported_photometric", "decode_timeout",
)


class ImageRefused(ValueError):
    """A file we will not display; `reason` is one of REASONS, the message is short and safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # pickled across the decode worker's pipe; the default would lose `reason`
        return ImageRefused, (self.reason, str(self))


@dataclass
class Decoded:
    """Decoded pixels of one frame (rows×cols or rows×cols×3), or all frames when asked (frames first)."""

    pixels: np.ndarray
    photometric: str  # after the decoder's own colour conversion (YBR_RCT/ICT/FULL come back as RGB)
    decoder: str  # the plugin that worked: pydicom, pylibjpeg, gdcm or pillow
    transfer_syntax: str
    frames: int
    frame: int | None
    warnings: list[str] = field(default_factory=list)


def read(source: bytes | str | Path, name: str | None = None) -> Dataset:
    """Parse a DICOM file (bytes or path) after the upload guard; refuses DICOMDIRs and their escaping paths."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        if path.stat().st_size > KINDS["dicom"].max_bytes:  # do not read a huge file just to hear it is too big
            raise ImageRefused("upload_rejected", f"The file is over the {KINDS['dicom'].max_bytes // 1024**2} MB "
                                                  "limit for a DICOM file.")
        source = path.read_bytes()
    try:
        check_upload(source, name or "upload.dcm", "dicom")
    except UploadRejected as exc:
        raise ImageRefused("upload_rejected", str(exc)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(source), force=True)
    except Exception as exc:  # noqa: BLE001 -- crafted headers fail in many ways inside pydicom
        raise ImageRefused("unreadable", f"The DICOM header could not be parsed ({type(exc).__name__}).") from None
    if "TransferSyntaxUID" not in ds.file_meta:
        # Pre-Part-10 files have no meta header; pydicom already worked out their encoding while reading them.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    _check_dicomdir(ds)
    return ds


def _check_dicomdir(ds: Dataset) -> None:
    if "DirectoryRecordSequence" not in ds:
        return
    for record in ds.DirectoryRecordSequence:
        parts = record.get("ReferencedFileID")
        parts = [parts] if isinstance(parts, str) else list(parts or [])
        if any(p in ("..", ".") or p.startswith(("/", "\\")) or ":" in p or "/" in p for p in parts):
            shown = "/".join(parts)[:80]
            raise ImageRefused("dicomdir_path", f"This DICOMDIR points outside its folder ('{shown}'); refusing it.")
    raise ImageRefused("dicomdir", "This is a DICOMDIR (an index of a DICOM folder), not an image: open the folder.")


def frame_count(ds: Dataset) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about an invalid IS value before we refuse it
            return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        raise ImageRefused("missing_attribute", "Number of Frames is not a number.") from None


def _pixel_keyword(ds: Dataset) -> str:
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            return keyword
    raise ImageRefused("no_pixels", "This DICOM file has no pixel data (not an image: a report, list or structure).")


def check_geometry(ds: Dataset) -> int:
    """Refuse absurd or inconsistent dimensions before any decoder allocates memory; returns the decoded bytes."""
    keyword = _pixel_keyword(ds)
    missing = [k for k in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation") if ds.get(k) in (None, "")]
    if missing:
        raise ImageRefused("missing_attribute", f"The image header lacks {', '.join(missing)}.")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated) if keyword == "PixelData" else (32 if keyword == "FloatPixelData" else 64)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (TypeError, ValueError):
        raise ImageRefused("missing_attribute", "The image header has non-numeric dimensions.") from None
    frames = frame_count(ds)
    if rows <= 0 or cols <= 0 or samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise ImageRefused("missing_attribute", f"Implausible image header: {rows}×{cols}, {samples} samples, "
                                                f"{bits} bits allocated.")
    decoded = rows * cols * frames * samples * max(bits, 8) // 8
    if decoded > MAX_PIXEL_BYTES:
        raise ImageRefused("too_large", f"The header declares {rows}×{cols}×{frames} frames, {decoded / 1024**3:.1f} GB "
                                        f"of pixels; the limit is {MAX_PIXEL_BYTES // 1024**3} GB.")
    if ds.file_meta.TransferSyntaxUID in NATIVE or keyword != "PixelData":
        _check_native_length(ds, keyword, rows, cols, frames, samples, bits)
    return decoded


def _check_native_length(ds: Dataset, keyword: str, rows: int, cols: int, frames: int, samples: int,
                         bits: int) -> None:
    # Native YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr for each pair), not three.
    per_pixel = 2 if samples == 3 and ds.PhotometricInterpretation == "YBR_FULL_422" else samples
    expected = (rows * cols * frames * per_pixel * bits + 7) // 8
    actual = len(ds[keyword].value or b"")
    frame_bytes = max(expected // frames, 1)
    if actual < expected and actual and actual % frame_bytes == 0 and frames > 1:
        raise ImageRefused("dimension_mismatch", f"Rows × Columns × Frames ({rows}×{cols}×{frames}) do not match "
                                                 f"the pixel data, which holds {actual // frame_bytes} frames.")
    if actual < expected:
        raise ImageRefused("truncated", f"The pixel data is truncated: {actual:,} of the {expected:,} bytes that "
                                        f"{rows}×{cols}×{frames} frame(s) need.")
    # Trailing padding happens (pydicom ignores it); a whole frame or more left over means the dimensions are wrong.
    if actual >= expected + frame_bytes:
        raise ImageRefused("dimension_mismatch", f"Rows × Columns × Frames ({rows}×{cols}×{frames}) do not match "
                                                 f"the pixel data ({actual:,} bytes for {expected:,} expected).")


def _check_syntax(ds: Dataset) -> UID:
    uid = UID(ds.file_meta.TransferSyntaxUID)
    if uid not in PLUGIN_ORDER:
        raise ImageRefused("unsupported_syntax", f"Unsupported transfer syntax: {uid.name or uid[:64]}.")
    if uid == JPEGExtended12Bit and int(ds.get("BitsStored") or 8) > 8:
        # Only libjpeg-turbo-12 / IJG 12-bit builds decode this; in Python that is pylibjpeg-libjpeg, GPL-3.
        raise ImageRefused("gpl_decoder_required", "12-bit JPEG Extended (Process 4) needs the pylibjpeg-libjpeg "
                           "decoder, which is GPL-licensed and not installed: ask for JPEG 2000, JPEG-LS or "
                           "uncompressed images instead.")
    return uid


def decode(ds: Dataset, frame: int | None = 0, *, timeout: float = DECODE_TIMEOUT_S) -> Decoded:
    """Decode one frame (or every frame for frame=None) with the first preferred plugin that succeeds.

    Compressed syntaxes decode in a worker process bounded by `timeout` seconds and by memory (module docstring).
    """
    declared = check_geometry(ds)
    uid = _check_syntax(ds)
    frames = frame_count(ds)
    if frame is not None and not 0 <= frame < frames:
        raise ImageRefused("bad_frame", f"Frame {frame} does not exist: this image has {frames} frame(s), "
                                        f"numbered from 0.")
    if uid in NATIVE or multiprocessing.current_process().daemon:  # daemons (DataLoader workers) cannot fork
        outcome = _decode_here(ds, uid, frame)
    else:
        memory = declared * WORKER_MEMORY_FACTOR + WORKER_MIN_HEADROOM
        outcome = bounded(_decode_here, (ds, uid, frame), timeout=timeout, memory=memory)
    if isinstance(outcome, ImageRefused):
        raise outcome
    arr, photometric, plugin, caught = outcome
    return Decoded(arr, photometric, plugin, uid.name, frames, frame, caught)


def _decode_here(ds: Dataset, uid: UID, frame: int | None) -> tuple[np.ndarray, str, str, list[str]] | ImageRefused:
    """(pixels, photometric, plugin, warnings), or the refusal, returned rather than raised to cross processes."""
    decoder = get_decoder(uid)
    available = set(decoder.available_plugins) | {""}
    errors: list[str] = []
    for plugin in (p for p in PLUGIN_ORDER[uid] if p in available):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                arr, meta = decoder.as_array(ds, index=frame, decoding_plugin=plugin, as_rgb=True)
            except Exception as exc:  # noqa: BLE001 -- decoders raise anything from RuntimeError to struct.error
                errors.append(f"{plugin or 'pydicom'}: {_first_line(exc)}")
                continue
        return (arr, str(meta.get("photometric_interpretation", ds.PhotometricInterpretation)), plugin or "pydicom",
                [str(w.message)[:200] for w in caught])
    if not errors:
        return ImageRefused("unsupported_syntax", f"No decoder is installed for {uid.name}.")
    return ImageRefused("decode_failed", "The compressed pixel data could not be decoded (damaged or truncated, or "
                        "its own header declares a larger image than the DICOM header): " + "; ".join(errors)[:300])


def bounded(func: Callable, args: tuple, *, timeout: float, memory: int | None = None):
    """func(*args) in a forked worker with `timeout` seconds and `memory` more bytes of address space than it starts
    with; ImageRefused("decode_timeout") when it runs out of time, ("decode_failed") when the worker dies."""
    # fork, not spawn or forkserver: both of those re-run the __main__ module in the worker, and under Streamlit
    # __main__ is the page script itself. A forked worker starts in milliseconds with the dataset already in memory.
    # Forking a multi-threaded app can copy a lock another thread held; the worker only decodes, and whatever it
    # waits on is cut by the same timeout, so the worst case is a timeout message, never a hung page.
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker, args=(sender, func, args, memory), daemon=True)
    worker.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise ImageRefused("decode_timeout", f"Decoding the pixel data took longer than {timeout:g} s and was "
                                                 "stopped: the compressed data is probably crafted or damaged.")
        return receiver.recv()
    except (EOFError, OSError):  # the worker died without answering: killed, or crashed inside a C decoder
        raise ImageRefused("decode_failed", "The decoder crashed on this file's pixel data (damaged or crafted "
                                            "compressed data); nothing was displayed.") from None
    finally:
        receiver.close()
        if worker.is_alive():
            worker.kill()
        worker.join()


def _worker(sender, func: Callable, args: tuple, memory: int | None) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # C decoders print their complaints to stderr; the reply carries what the user needs
    if memory is not None:
        with open("/proc/self/statm") as statm:  # first field: the address space mapped now, in pages
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = mapped + memory if hard == resource.RLIM_INFINITY else min(mapped + memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        result = func(*args)
    except MemoryError:
        result = ImageRefused("decode_failed", "Decoding needed more memory than the image header allows for; the "
                                               "compressed data probably declares a larger image.")
    sender.send(result)
    sender.close()


def _first_line(exc: Exception) -> str:
    # pydicom wraps plugin errors as "Unable to decode ...:\n  plugin: reason"; the reason is what helps.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[1].split(":", 1)[-1].strip() if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
    return text[:150]
