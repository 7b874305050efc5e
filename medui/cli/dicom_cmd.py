"""`medui dicom`: decode and window DICOM files, folders or zips; findings and where the model looked; PNGs."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medui.cli.common import CliError, Result, table

CAM_METHODS = ("gradcam", "gradcampp", "hirescam", "ig", "occlusion")  # medui.imaging.attribution.METHODS, unimported
OUTPUTS = ("With several images, --png and --cam name a folder and write NNNN_NAME.png and NNNN_NAME-cam.png, NNNN "
           "being the image's position in the --json list (errors count too). A phantom study's labels.csv (from `medui "
           "imaging synth` or the Imaging page's sample ZIP) is skipped.")


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    from medui.imaging import WINDOW_CHOICES

    parser = commands.add_parser("dicom", parents=[json_parent], help="decode and display DICOM images",
                                 description="Decode DICOM files (or folders and ZIP archives of them), classify "
                                 "each image with the registered chest-findings model and map where it looked "
                                 "for the most probable finding other than normal. " + OUTPUTS)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, folders or ZIP archives")
    parser.add_argument("--frame", type=int, default=0, help="frame of a multi-frame image, from 0 (default 0)")
    parser.add_argument("--png", metavar="OUT", help="write the rendering to OUT (a folder when several images)")
    parser.add_argument("--cam", metavar="OUT", help="write the attribution overlay to OUT (a folder when several "
                        "images; images without a map get no file)")
    parser.add_argument("--cam-method", choices=CAM_METHODS, default="gradcam",
                        help="attribution method for cam and --cam (default gradcam)")
    parser.add_argument("--window", default="header", metavar="WINDOW",
                        help=f"{'|'.join(WINDOW_CHOICES)} or CENTER,WIDTH (default: header, else auto)")
    parser.set_defaults(handler=_run)


def _sources(paths: list[str], scratch: Path) -> Iterator[tuple[str, Path]]:
    """(name to show, file) for every file behind the PATH arguments; zips go through the upload guard."""
    from medui.uploads import check_upload, extract_zip

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and not _phantom_labels(p)):
                yield str(file), file
        elif path.read_bytes()[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            data = path.read_bytes()
            check_upload(data, path.name, "zip")
            target = scratch / f"zip{len(list(scratch.iterdir()))}"
            for file in sorted(f for f in extract_zip(data, target) if not _phantom_labels(f)):
                yield f"{raw}:{file.relative_to(target.resolve()).as_posix()}", file
        else:
            yield raw, path


def _phantom_labels(path: Path) -> bool:
    """A phantom study's labels.csv (`medui imaging synth` writes it beside the images): not an image, not an error."""
    from medui.imaging.phantom import LABEL_COLUMNS

    if path.name != "labels.csv":
        return False
    with path.open("rb") as handle:
        return handle.readline().decode("utf-8", "replace").strip() == ",".join(LABEL_COLUMNS)


def _one(name: str, file: Path, frame: int, window: Any, classifier: Any, method: str
         ) -> tuple[dict[str, Any], Any, Any]:
    """(JSON entry, display image, overlay image or None) for one file; ImageRefused for a file we cannot show."""
    from medui.imaging import burned_in_warning, open_image
    from medui.imaging.analysis import cam_summary, classify_image, explain, image_entry, model_view, top_finding

    ds, decoded, shown = open_image(file, name=file.name, frame=frame, window=window)
    warnings = [*shown.warnings]
    if burn := burned_in_warning(ds):
        warnings.append(burn)
    found = classify_image(classifier, model_view(ds, decoded, shown, window, frame), ds)
    warnings += found.warnings
    cam, overlaid = None, None
    if (label := top_finding(found.findings)) is not None:
        from medui.imaging.attribution import overlay

        amap = explain(classifier, found, label, method, shown.image.shape)
        cam, overlaid = cam_summary(amap), overlay(shown.image, amap)
    return image_entry(name, ds, decoded, shown, found, cam, warnings), shown.image, overlaid


def _write_pngs(out: str, images: list[tuple[int, str, Any]], suffix: str) -> None:
    """One image to OUT itself (unless it is a folder), several into the folder OUT (see OUTPUTS)."""
    from PIL import Image

    target = Path(out)
    if len(images) == 1 and not target.is_dir():
        Image.fromarray(images[0][2]).save(target, format="PNG")
        return
    target.mkdir(parents=True, exist_ok=True)
    for k, name, image in images:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name.split(":")[-1]).stem)[:60]
        Image.fromarray(image).save(target / f"{k:04d}_{stem}{suffix}.png", format="PNG")


def _run(args: argparse.Namespace) -> Result:
    from medui.imaging import ImageRefused, parse_window
    from medui.imaging.analysis import NO_MODEL, NOT_FOR_CLINICAL_USE
    from medui.imaging.classify import load_classifier

    window = parse_window(args.window)
    missing = next((raw for raw in args.paths if not Path(raw).exists()), None)
    if missing is not None:  # before the model loads (tens of seconds), not after
        raise CliError(f"{missing}: no such file or folder")
    classifier = load_classifier()
    results: list[dict[str, Any]] = []
    images: list[tuple[int, str, Any]] = []
    overlays: list[tuple[int, str, Any]] = []
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
                entry, image, overlaid = _one(name, file, args.frame, window, classifier, args.cam_method)
            except (ImageRefused, ValueError, OSError) as exc:
                results.append({"source": name, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__})
                continue
            images.append((len(results), name, image))
            if overlaid is not None:
                overlays.append((len(results), name, overlaid))
            results.append(entry)
    if args.png and images:
        _write_pngs(args.png, images, "")
    if args.cam and overlays:
        _write_pngs(args.cam, overlays, "-cam")
    rows = [{"source": r["source"], "modality": r.get("modality") or "", "size": f"{r['rows']}x{r['columns']}"
             if "rows" in r else "", "decoder": r.get("decoder", ""), "window": _window_text(r) if "window" in r
             else "", "finding": _finding_text(r), "note": r.get("error") or _note(r)} for r in results]
    footer = NO_MODEL if classifier is None else NOT_FOR_CLINICAL_USE
    text = table(rows, ["source", "modality", "size", "decoder", "window", "finding", "note"]) + f"\n({footer})"
    return Result(results, text, exit_code=1 if any("error" in r for r in results) or not results else 0)


def _window_text(entry: dict[str, Any]) -> str:
    w = entry["window"]
    return w["source"] if w["center"] is None else f"{w['center']:g}/{w['width']:g} ({w['source']})"


def _note(entry: dict[str, Any]) -> str:
    """The warnings in short (the missing model is said once, under the table)."""
    from medui.imaging.analysis import NO_MODEL

    text = "; ".join(w for w in entry.get("warnings", []) if w != NO_MODEL)
    return text if len(text) <= 90 else text[:89] + "…"


def _finding_text(entry: dict[str, Any]) -> str:
    if not entry.get("findings"):
        return ""
    top = entry["findings"][0]
    peak = entry["cam"]["peak"] if entry.get("cam") else None
    where = f" (peak row {peak[0]}, col {peak[1]})" if peak and top["label"] == entry["cam"]["label"] else ""
    return f"{top['label']} {top['probability']:.2f}{where}"
