"""Display latency: `python bench/imaging.py [--json] [--repeat N]`.

Per file, median milliseconds of MedUI's read → decode (preferred plugin) → render against plain pydicom
(dcmread → pixel_array → apply_modality_lut → apply_voi_lut), on pydicom's and pydicom-data's test images, first
frame only for MedUI (what the viewer shows) and every frame for plain pydicom (what `pixel_array` does).
Run it from a folder without a `dl` subfolder: python-gdcm fails to import there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MEDUI_HOME", tempfile.mkdtemp(prefix="medui-bench-"))

FILES = ["CT_small.dcm", "MR_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg.dcm",
         "OBXXXX1A.dcm", "US1_J2KR.dcm", "MR2_J2KR.dcm", "RG1_UNCR.dcm", "RG1_J2KR.dcm", "color3d_jpeg_baseline.dcm"]


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from medui.imaging import open_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for name in FILES:
        path = get_testdata_file(name, download=False)
        if path is None:
            continue
        _, decoded, _ = open_image(path)

        def plain(path=path):
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
            if ds.PhotometricInterpretation.startswith("MONO"):
                apply_voi_lut(apply_modality_lut(arr, ds), ds)

        rows.append({"file": name, "syntax": decoded.transfer_syntax, "frames": decoded.frames,
                     "decoder": decoded.decoder, "medui_ms": round(_median_ms(lambda p=path: open_image(p), args.repeat), 1),
                     "pydicom_ms": round(_median_ms(plain, args.repeat), 1)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'file':34} {'transfer syntax':42} {'frames':>6} {'decoder':9} {'medui ms':>9} {'pydicom ms':>10}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['file']:34} {r['syntax'][:42]:42} {r['frames']:>6} {r['decoder']:9} {r['medui_ms']:>9} "
              f"{r['pydicom_ms']:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
