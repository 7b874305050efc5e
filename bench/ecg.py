"""Signals benchmarks, ECG part: `python bench/ecg.py [--hours 1] [--repeats 3] [--json]`.

1. Full analysis (read + medui.signals.ecg.analyse: lead choice, inversion check, cleaning, two R-peak detectors,
   quality, DWT delineation, rhythm model if one is registered) of pydicom's 10 s 12-lead `waveform_ecg.dcm`,
   against NeuroKit2's `ecg_process` alone on the same lead II; both as median wall time over --repeats runs.
2. A long single-lead 250 Hz synthetic recording (default 1 h; `--hours 24` for a full Holter day, a few minutes
   on two cores) generated and analysed in 5-minute chunks by `analyse_long`, so memory is bounded by a chunk:
   wall time, beats, heart rate against the simulated rate, and the process's peak RSS.
3. The page's and CLI's Holter path (`analyse` on a recording over 10 minutes: chunked peaks, quality, rhythm
   model on every 10 s window) on a --holter-hours synthetic recording held in memory, with a planted AF
   paroxysm (a sixth of the recording): wall time, peak RSS, and the AF burden found against the planted one.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medui.signals.ecg import analyse, analyse_long, read_ecg

FS, CHUNK_S, RATE = 250, 300, 72


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def bench_12_lead(repeats: int) -> dict:
    import neurokit2 as nk
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file("waveform_ecg.dcm", download=False))
    analyse(read_ecg(path, path.name))  # warm-up: imports (NeuroKit2, torch when a rhythm model is registered)
    ours, theirs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        record = read_ecg(path, path.name)
        result = analyse(record)
        ours.append(time.perf_counter() - start)
        lead = record.signals[record.lead_names.index("II")]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.ecg_process(lead, sampling_rate=record.fs)
        theirs.append(time.perf_counter() - start)
    nk_peaks = np.asarray(info["ECG_R_Peaks"])
    return {"ours_s": statistics.median(ours), "ecg_process_s": statistics.median(theirs),
            "peaks": len(result["r_peaks"]), "nk_peaks": len(nk_peaks),
            "same_peaks": bool(np.array_equal(result["r_peaks"], nk_peaks)),
            "heart_rate_bpm": result["heart_rate_bpm"], "rhythm_model": result["model"]}


def synthetic_chunks(hours: float, seed: int = 0) -> Iterator[np.ndarray]:
    """Consecutive 5-minute chunks of a simulated single-lead ECG at RATE bpm, generated on the fly."""
    import neurokit2 as nk

    total = int(hours * 3600 * FS)
    done = 0
    while done < total:
        n = min(CHUNK_S * FS, total - done)  # whole seconds: `length=` gives a garbled "simple" signal in NK 0.3
        # NeuroKit2's "simple" model: ecgsyn would take hours for a day; the detectors see a realistic QRS either way.
        chunk = nk.ecg_simulate(duration=n / FS, sampling_rate=FS, heart_rate=RATE, method="simple", noise=0.05,
                                random_state=seed + done // (CHUNK_S * FS))
        done += n
        yield chunk


def bench_long(hours: float) -> dict:
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    from tqdm import tqdm  # installed with transformers; a Holter day takes minutes, so show how far it is

    chunks = tqdm(synthetic_chunks(hours), total=math.ceil(hours * 3600 / CHUNK_S), unit="chunk",
                  desc="long recording", file=sys.stderr)
    result = analyse_long(chunks, FS)
    return {"hours": hours, "seconds": time.perf_counter() - start, "beats": result["beats"],
            "expected_beats": round(hours * 60 * RATE), "heart_rate_bpm": result["heart_rate_bpm"],
            "sdnn_ms": result["rr_ms"]["sdnn"], "peak_rss_mb_before": rss_before, "peak_rss_mb": peak_rss_mb(),
            "signal_mb_if_held": hours * 3600 * FS * 8 / 2**20}


def bench_holter(hours: float) -> dict:
    from tqdm import tqdm

    from medui.signals.ecg import EcgRecord
    from medui.signals.ecg.synth import long_recording

    minutes = max(12, round(hours * 60))
    af = range(minutes // 3, minutes // 3 + minutes // 6)
    plan = [("atrial fibrillation" if m in af else "sinus rhythm", 60.0) for m in range(minutes)]
    record = EcgRecord(long_recording(plan, seed=1, fs=FS)[None], FS, ["II"], "mV", "synthetic")
    start = time.perf_counter()
    with tqdm(total=100, unit="%", desc="holter summary", file=sys.stderr) as bar:
        result = analyse(record, progress=lambda done: bar.update(round(100 * done) - bar.n))
    burden = result["holter"].get("rhythm", {}).get("burden", {})
    return {"hours": minutes / 60, "seconds": time.perf_counter() - start, "beats": len(result["r_peaks"]),
            "af_burden": burden.get("atrial fibrillation"), "af_planted": len(af) / minutes,
            "peak_rss_mb": peak_rss_mb(), "signal_mb": record.signals.nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="long recording length (24 for a Holter day)")
    parser.add_argument("--holter-hours", type=float, default=1.0, help="Holter summary recording length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    long = bench_long(args.hours)  # first, so its peak RSS is not masked by the rhythm model's imports (torch)
    short = bench_12_lead(args.repeats)
    holter = bench_holter(args.holter_hours)
    if args.json:
        print(json.dumps({"twelve_lead": short, "long": long, "holter": holter}, indent=2, default=str))
        return
    print("10 s 12-lead DICOM (waveform_ecg.dcm), median of", args.repeats)
    print(f"  medui read + analyse (all steps)   {short['ours_s'] * 1000:8.0f} ms   {short['peaks']} R-peaks, "
          f"{short['heart_rate_bpm']} bpm, rhythm model {short['rhythm_model']}")
    print(f"  nk.ecg_process on lead II alone    {short['ecg_process_s'] * 1000:8.0f} ms   {short['nk_peaks']} R-peaks "
          f"(same peaks: {short['same_peaks']})")
    print(f"{long['hours']:g} h single lead at {FS} Hz, {CHUNK_S // 60}-minute chunks")
    print(f"  time {long['seconds']:.1f} s, {long['beats']} beats (simulated {long['expected_beats']}), "
          f"{long['heart_rate_bpm']} bpm (simulated {RATE}), SDNN {long['sdnn_ms']} ms")
    print(f"  peak RSS {long['peak_rss_mb']:.0f} MB (before the long run {long['peak_rss_mb_before']:.0f} MB; "
          f"the whole signal as float64 would be {long['signal_mb_if_held']:.0f} MB)")
    print(f"Holter summary (page/CLI path), {holter['hours']:g} h in memory ({holter['signal_mb']:.0f} MB as float32)")
    print(f"  time {holter['seconds']:.1f} s, {holter['beats']} beats, AF burden {holter['af_burden']} "
          f"(planted {holter['af_planted']:.3f}), peak RSS {holter['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
