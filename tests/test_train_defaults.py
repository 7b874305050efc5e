"""The scripts that produce the shipped models run end to end at toy sizes and write a shippable version."""

from __future__ import annotations

import json
import os

import pytest

from medui.registry import read_manifest


def _shipped(folder):
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "production" and "not for clinical use" in manifest["provenance"]["note"]
    read_manifest(folder, True, None)  # files and digests as the registry checks them
    return manifest


@pytest.mark.slow
def test_ecg_rhythm_trainer_ships_a_version(tmp_path):
    from medui.signals.ecg import train_default

    home = os.environ.get("MEDUI_HOME")
    target = train_default.train(tmp_path, n_per_class=6, epochs=1, version="9")
    assert target == tmp_path / "ecg-rhythm" / "9"
    manifest = _shipped(target)
    assert set(manifest["metrics"]["auroc_per_class"]) == set(manifest["labels"])
    assert os.environ.get("MEDUI_HOME") == home  # the temporary home is undone
    with pytest.raises(SystemExit, match="already exists"):
        train_default.train(tmp_path, n_per_class=6, epochs=1, version="9")


@pytest.mark.slow
def test_chest_findings_trainer_ships_a_calibrated_version(tmp_path):
    from medui.imaging import train_default

    target = train_default.train(tmp_path, n=40, test_n=30, epochs=1, image_size=64, phantom_size=128, version="9",
                                 cam_layer_images=2)
    manifest = _shipped(target)
    assert (target / "calibration.json").is_file()
    assert {"calibration.json", "attribution.json"} <= {f["path"] for f in manifest["files"]}


@pytest.mark.slow
def test_notes_ner_trainer_ships_a_version_with_its_spec(tmp_path):
    from medui.notes import train_default

    target = train_default.train(tmp_path, n=40, max_steps=2, version="9")
    manifest = _shipped(target)
    assert set(manifest["labels"]) == set(train_default.LABELS)
    assert manifest["provenance"]["spec"]["max_steps"] == 2
