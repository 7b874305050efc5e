"""Which layer a CAM reads for each finding: chosen by the pointing game on validation phantoms, shipped with a model.

A CAM's layer trades resolution for meaning (LayerCAM, Jiang et al. 2021): a stride-16 block localises a small
nodule, while a whole opacified lung base is only recognised as an effusion by a deeper, coarser block. On the shipped
chest model, one layer for all findings fell short of the issue's 0.85 (bench/imaging.py: nodule 1.0 and effusion
0.57 at blocks.4; effusion 1.0 and nodule 0.08 at blocks.5), so each finding gets the candidate layer that points
best on phantoms drawn with a seed used nowhere else (not training, not the fresh test set, not the bench), stored in
the version's `attribution.json` (sha256-checked like every file) and read back by the classifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from medui.registry import ModelVersion, RegistryError

ATTRIBUTION_FILE = "attribution.json"  # {"cam_layers": {finding: layer}, "selection": {...how they were chosen}}
CANDIDATE_LAYERS = ("blocks.3", "blocks.4", "blocks.5", "blocks.6")  # EfficientNet stages at stride 16, 16, 32, 32
SELECTION_SEED = 555  # training uses 0, the fresh test set 1000, bench/imaging.py 777
PHANTOM_PX = 512
_LAYER_NAME = re.compile(r"blocks\.\d{1,2}")


def pointing_hits(classifier: Any, n: int, seed: int, layers_for: Callable[[str], Iterable[str | None]]
                  ) -> dict[str, dict[str | None, list[bool]]]:
    """Grad-CAM pointing-game hits {finding: {layer: [hit per positive]}} over n phantoms of `seed`, each finding's
    map taken at every layer `layers_for(finding)` names (None: the architecture's last stage)."""
    from medui.imaging import decode, render
    from medui.imaging.attribution import attribute
    from medui.imaging.phantom import phantom_dataset
    from medui.imaging.trust import pointing_game

    hits: dict[str, dict[str | None, list[bool]]] = {}
    for index in range(n):
        ds, findings = phantom_dataset(seed, index, PHANTOM_PX)
        display = render(ds, decode(ds, 0), "header").image  # the header window, as in training
        found = classifier.classify(display, ds)
        for label in sorted({f.label for f in findings} & set(classifier.labels)):
            for layer in layers_for(label):
                amap = attribute(classifier, found.input, classifier.labels.index(label), "gradcam",
                                 display.shape, layer)
                hits.setdefault(label, {}).setdefault(layer, []).append(bool(pointing_game(amap, findings).hit))
    return hits


def select_layers(classifier: Any, n: int = 60, seed: int = SELECTION_SEED) -> dict[str, Any]:
    """The `attribution.json` content: per finding, the candidate layer with the best pointing rate on n phantoms
    (ties go to the finer, earlier layer), with every candidate's rate kept as the evidence."""
    hits = pointing_hits(classifier, n, seed, lambda label: CANDIDATE_LAYERS)
    rates = {label: {layer: round(sum(v) / len(v), 3) for layer, v in by_layer.items()}
             for label, by_layer in hits.items()}
    chosen = {label: max(CANDIDATE_LAYERS, key=lambda layer: (by_layer[layer], -CANDIDATE_LAYERS.index(layer)))
              for label, by_layer in rates.items()}
    return {"cam_layers": chosen,
            "selection": {"method": "Grad-CAM pointing game (peak within 15 px of the finding's box)",
                          "phantoms": {"generator": "medui.imaging.phantom.phantom_dataset", "seed": seed,
                                       "images": n, "size_px": PHANTOM_PX},
                          "positives": {label: len(next(iter(v.values()))) for label, v in hits.items()},
                          "pointing_rate": rates}}


def read_layers(mv: ModelVersion, labels: list[str]) -> dict[str, str]:
    """{finding: layer} from the version's attribution.json (digest checked by load_for_inference), {} without one."""
    if ATTRIBUTION_FILE not in {f.path for f in mv.files}:
        return {}
    raw = json.loads((mv.directory / ATTRIBUTION_FILE).read_text(encoding="utf-8"))
    layers = raw.get("cam_layers") if isinstance(raw, dict) else None
    if not isinstance(layers, dict) or not set(layers) <= set(labels) or not all(
            isinstance(v, str) and _LAYER_NAME.fullmatch(v) for v in layers.values()):
        raise RegistryError(f"{mv.name}/{mv.version} {ATTRIBUTION_FILE}: cam_layers must map the model's findings "
                            "to layer names like blocks.4")
    return dict(layers)
