"""`medui dicom`: decode and window DICOM files, folders or zips; optionally write the display rendering as PNG."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medui.cli.common import CliError, Result, table

NO_MODEL = "no imaging model is registered yet"


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    from medui.imaging import WINDOW_CHOICES

    parser = commands.add_parser("dicom", parents=[json_parent], help="decode and display DICOM images",
                                 description="Decode DICOM files (or folders and ZIP archives of them) and report "
                                 "what was found; --png writes the display rendering.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders or ZIP archives")
    parser.add_argument("--frame", type=int, default=0, help="frame of a multi-frame image, from 0 (default 0)")
    parser.add_argument("--png", metavar="OUT", help="write the rendering to OUT (a folder when several images)")
    parser.add_argument("--window", default="header", metavar="WINDOW",
                        help=f"{'|'.join(WINDOW_CHOICES)} or CENTER,WIDTH (default: header, else auto)")
    parser.set_defaults(handler=_run)


def _sources(paths: list[str], scratch: Path) -> Iterator[tuple[str, Path]]:
    """(name to show, file) for every file behind the PATH arguments; zips go through the upload guard."""
    from medui.uploads import check_upload, extract_zip

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CliError(f"{raw}: no such file or folder")
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                yield str(file), file
        elif path.read_bytes()[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            data = path.read_bytes()
            check_upload(data, path.name, "zip")
            target = scratch / f"zip{len(list(scratch.iterdir()))}"
            for file in sorted(extract_zip(data, target)):
                yield f"{raw}:{file.relative_to(target.resolve()).as_posix()}", file
        else:
            yield raw, path


def _one(name: str, file: Path, frame: int, window: Any) -> tuple[dict[str, Any], Any]:
    from medui.imaging import burned_in_warning, open_image

    ds, decoded, shown = open_image(file, name=file.name, frame=frame, window=window)
    warnings = [*shown.warnings]
    if burn := burned_in_warning(ds):
        warnings.append(burn)
    warnings.append(NO_MODEL)
    return {
        "source": name, "sop_instance_uid": str(ds.get("SOPInstanceUID") or "") or None,
        "modality": str(ds.get("Modality") or "") or None, "photometric": str(ds.PhotometricInterpretation),
        "transfer_syntax": decoded.transfer_syntax, "decoder": decoded.decoder, "rows": int(ds.Rows),
        "columns": int(ds.Columns), "frames": decoded.frames, "window": shown.window, "findings": [], "cam": None,
        "model": None, "warnings": warnings,
    }, shown.image


def _run(args: argparse.Namespace) -> Result:
    from PIL import Image

    from medui.imaging import ImageRefused, parse_window

    window = parse_window(args.window)
    results: list[dict[str, Any]] = []
    images: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="medui-dicom-") as scratch:
        for name, file in _sources(args.paths, Path(scratch)):
            if file.name.upper() == "DICOMDIR":
                try:
                    from medui.imaging import read

                    read(file)
                except ImageRefused as exc:
                    if exc.reason == "dicomdir":
                        continue  # a sound index: the files it lists are walked anyway
                    results.append({"source": name, "error": str(exc)})
                    continue
            try:
                entry, image = _one(name, file, args.frame, window)
            except (ImageRefused, ValueError, OSError) as exc:
                results.append({"source": name, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
                continue
            results.append(entry)
            images.append((name, image))
    if args.png and images:
        out = Path(args.png)
        if len(images) == 1 and not out.is_dir():
            Image.fromarray(images[0][1]).save(out, format="PNG")
        else:
            out.mkdir(parents=True, exist_ok=True)
            for k, (name, image) in enumerate(images):
                stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name.split(":")[-1]).stem)[:60]
                Image.fromarray(image).save(out / f"{k:04d}_{stem}.png", format="PNG")
    rows = [{"source": r["source"], "modality": r.get("modality") or "", "size": f"{r['rows']}x{r['columns']}"
             if "rows" in r else "", "decoder": r.get("decoder", ""), "window": _window_text(r) if "window" in r
             else "", "note": r.get("error", "")} for r in results]
    text = table(rows, ["source", "modality", "size", "decoder", "window", "note"]) + f"\n({NO_MODEL})"
    return Result(results, text, exit_code=1 if any("error" in r for r in results) or not results else 0)


def _window_text(entry: dict[str, Any]) -> str:
    w = entry["window"]
    return w["source"] if w["center"] is None else f"{w['center']:g}/{w['width']:g} ({w['source']})"
