"""`medui ecg`: heart rate, R-peaks, RR/HRV, signal quality and rhythm from a CSV, WFDB, EDF or DICOM ECG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medui.cli.common import CliError, Result


def register(commands, json_parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("ecg", parents=[json_parent], help="ECG analysis (NeuroKit2) of one recording",
                                 description="Reads a CSV, WFDB (.hea + .dat), EDF/EDF+ or DICOM waveform ECG and "
                                 "prints heart rate, R-peaks, RR statistics, signal quality and rhythm. Recordings "
                                 "over 10 minutes (Holter) get a chunked summary under \"holter\": hourly heart "
                                 "rate, pauses and rhythm burden, with a progress bar on a terminal.")
    parser.add_argument("path", metavar="PATH", help="the recording (for WFDB: the .hea file or the record path)")
    parser.add_argument("--fs", type=float, metavar="HZ", help="sampling rate, for a CSV without a time column")
    parser.set_defaults(handler=_run)


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def _holter_lines(summary: dict) -> list[str]:
    lines = [f"hour {h['hour']:>2}: {h['beats']} beats, heart rate mean {_fmt(h['hr_mean'])}, "
             f"min {_fmt(h['hr_min'])}, max {_fmt(h['hr_max'])} bpm" for h in summary["hours"]]
    pauses = summary["pauses"]
    lines.append(f"pauses over {pauses['threshold_s']:g} s: {pauses['count']}"
                 + (f", longest {pauses['longest_s']:g} s" if pauses["count"] else ""))
    if "rhythm" in summary:
        shares = summary["rhythm"]["burden"].items()
        burden = ", ".join(f"{label} {100 * share:.1f}%" for label, share in shares if share)
        lines.append(f"rhythm burden over {summary['rhythm']['windows']} windows: {burden}; longest atrial "
                     f"fibrillation run {_fmt(summary['rhythm']['af_longest_s'], ' s')}")
    return lines


def _run(args: argparse.Namespace) -> Result:
    from medui.signals.ecg import analyse, read_ecg

    path = Path(args.path)
    if not path.exists() and not path.with_suffix(".hea").exists():
        raise CliError(f"cannot read {path}: no such file")
    record = read_ecg(path, path.name, fs=args.fs)
    from tqdm import tqdm

    # Holter-length recordings take a while: a progress bar on stderr (shown on a terminal only), stdout stays JSON.
    with tqdm(total=100, unit="%", desc="analysing", file=sys.stderr, disable=None, leave=False) as bar:
        result = analyse(record, progress=lambda done: bar.update(round(100 * done) - bar.n))
    for note in result["warnings"]:  # warnings go to stderr too, so --json stays one object on stdout
        print(f"warning: {note}", file=sys.stderr)
    data = {k: v for k, v in result.items() if k not in ("cleaned", "beats", "attributions")}
    rr = result["rr_ms"]
    top = result["rhythm"][0] if result["rhythm"] else None
    text = "\n".join([
        (f"{result['source']} recording, {len(result['leads'])} lead(s), {result['sampling_rate']:g} Hz, "
        f"{result['duration_s']:g} s ({result['units']})"),
        f"analysed lead {result['analysed_lead']} ({result['lead_choice']})",
        (f"heart rate {_fmt(result['heart_rate_bpm'], ' bpm')}, {len(result['r_peaks'])} R-peaks, "
        f"detector agreement {_fmt(result['detector_agreement'])}"),
        (f"RR mean {_fmt(rr['mean'], ' ms')}, SDNN {_fmt(rr['sdnn'], ' ms')}, RMSSD {_fmt(rr['rmssd'], ' ms')}, "
        f"pNN50 {_fmt(result['pnn50'], ' %')}"),
        f"signal quality {_fmt(result['quality']['mean'])} ({result['quality']['method']})",
        f"rhythm: {top['label']} ({top['probability']:.2f})" if top else "rhythm: not available",
        *(_holter_lines(result["holter"]) if "holter" in result else []),
    ])
    return Result(data, text)
