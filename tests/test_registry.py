"""The model registry: manifests, stages, promotion history, and refusing tampered or pickled weights."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from sqlalchemy import select

from medui import audit, registry
from medui.registry import RegistryError
from medui.store import session_scope
from medui.store.models import ModelPromotion, ModelStage


@pytest.fixture(autouse=True)
def shipped(shipped_models) -> Path:
    return shipped_models


def weights(path: Path, seed: int = 0) -> Path:
    gen = torch.Generator().manual_seed(seed)
    save_file({"linear.weight": torch.randn(3, 4, generator=gen), "linear.bias": torch.zeros(3)}, str(path))
    return path


def register(tmp_path: Path, name: str = "ner-demo", seed: int = 0, **overrides) -> registry.ModelVersion:
    src = tmp_path / f"src-{name}-{seed}"
    src.mkdir(exist_ok=True)
    (src / "config.json").write_text(json.dumps({"hidden": 4}))
    kwargs = dict(base_model="bert-tiny", method="lora", labels=["O", "B-DRUG"], metrics={"f1": 0.5 + seed / 100},
                  provenance={"data_sha256": "ab" * 32, "training_spec": {"epochs": 1}}, actor="tester")
    kwargs.update(overrides)
    files = {"model.safetensors": weights(src / "model.safetensors", seed), "config.json": src / "config.json"}
    return registry.register_version(name, "ner", files, **kwargs)


def write_version(root: Path, name: str, version: str, /, payload: bytes | None = None, **manifest) -> Path:
    """A hand-made version folder (as shipped models are), with correct digests for whatever bytes it holds."""
    directory = root / name / version
    directory.mkdir(parents=True)
    if payload is None:
        weights(directory / "model.safetensors")
    else:
        (directory / "model.safetensors").write_bytes(payload)
    data = (directory / "model.safetensors").read_bytes()
    body = {"name": name, "version": version, "task": "image", "method": "full", "base_model": "resnet",
            "files": [{"path": "model.safetensors", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}]}
    body.update(manifest)
    (directory / "manifest.json").write_text(json.dumps(body))
    return directory


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_mode,
                                       hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


# --- register, list, show -------------------------------------------------------------------------------


def test_register_list_and_show(tmp_path, medui_home):
    first = register(tmp_path, seed=0)
    second = register(tmp_path, seed=1)
    assert (first.version, second.version) == ("1", "2")
    assert first.directory == medui_home / "models" / "ner-demo" / "1"
    assert not first.shipped and first.stage == "candidate" and first.method == "lora"
    assert first.labels == ["O", "B-DRUG"] and first.metrics == {"f1": 0.5}
    assert first.provenance["training_spec"] == {"epochs": 1}
    assert first.created_at.endswith("Z")

    manifest = json.loads((first.directory / "manifest.json").read_text())
    entries = {f["path"]: f for f in manifest["files"]}
    data = (first.directory / "model.safetensors").read_bytes()
    assert entries["model.safetensors"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert entries["model.safetensors"]["bytes"] == len(data)
    assert "stage" not in manifest  # stages live in the database

    assert [(mv.name, mv.version) for mv in registry.list_versions()] == [("ner-demo", "1"), ("ner-demo", "2")]
    assert registry.get_version("ner-demo", "2") == second
    assert registry.get_version("ner-demo", 2).metrics == {"f1": 0.51}
    json.dumps(second.to_dict())  # JSON-ready
    assert second.to_dict()["directory"] == str(second.directory)
    with session_scope() as session:
        assert session.scalars(select(ModelStage.stage).where(ModelStage.name == "ner-demo")).all() == \
            ["candidate", "candidate"]

    with pytest.raises(RegistryError, match="no production version of ner-demo"):
        registry.get_version("ner-demo")
    with pytest.raises(RegistryError, match=r"ner-demo has no version 7 \(versions: 1, 2\)"):
        registry.get_version("ner-demo", "7")
    with pytest.raises(RegistryError, match="no model named other .*ner-demo"):
        registry.get_version("other", "1")
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.get_version("../etc", "1")
    assert [e["detail"]["version"] for e in audit.events(action="model_register")] == ["2", "1"]


def test_versions_sort_numerically_and_numbering_spans_both_roots(tmp_path, shipped):
    for version in ("2", "10", "9"):
        write_version(shipped, "cxr", version)
    assert [mv.version for mv in registry.list_versions("cxr")] == ["2", "9", "10"]
    assert all(mv.shipped for mv in registry.list_versions("cxr"))
    new = registry.register_version("cxr", "image", {"model.safetensors": weights(tmp_path / "w.safetensors")},
                                    base_model="resnet", method="full", labels=[], metrics={}, provenance={},
                                    actor="tester")
    assert new.version == "11" and not new.shipped


def test_register_refuses_bad_input(tmp_path):
    good = weights(tmp_path / "model.safetensors")
    common = dict(base_model="b", method="full", labels=[], metrics={}, provenance={}, actor="t")
    cases = {
        "pickled checkpoint": {"pytorch_model.bin": good},
        "not inside": {"../model.safetensors": good},
        "only .safetensors": {"model.safetensors": good, "loader.py": good},
        "at least one .safetensors": {"config.json": good},
    }
    for message, files in cases.items():
        with pytest.raises(RegistryError, match=message):
            registry.register_version("m", "ner", files, **common)
    for suffix in (".pt", ".pth", ".ckpt", ".pkl", ".pickle"):
        with pytest.raises(RegistryError, match="pickled checkpoint"):
            registry.register_version("m", "ner", {"model.safetensors": good, "w" + suffix: good}, **common)
    with pytest.raises(RegistryError, match="unknown task"):
        registry.register_version("m", "audio", {"model.safetensors": good}, **common)
    with pytest.raises(RegistryError, match="unknown method"):
        registry.register_version("m", "ner", {"model.safetensors": good}, **{**common, "method": "magic"})
    # Content counts, not just the name: a pickle or torch.save zip called model.safetensors is refused.
    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(RegistryError, match="pickle payload"):
        registry.register_version("m", "ner", {"model.safetensors": tmp_path / "evil.safetensors"}, **common)
    torch.save({"a": torch.zeros(1)}, tmp_path / "zip.safetensors")
    with pytest.raises(RegistryError, match="torch.save"):
        registry.register_version("m", "ner", {"model.safetensors": tmp_path / "zip.safetensors"}, **common)
    assert registry.list_versions() == []


def test_a_failed_register_leaves_no_half_version(tmp_path, medui_home, monkeypatch):
    calls = []

    def crash_on_second(source, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(source, dest)

    real = registry._copy_hashed
    monkeypatch.setattr(registry, "_copy_hashed", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        register(tmp_path)
    assert os.listdir(medui_home / "models" / "ner-demo") == []  # no version, no staging leftovers
    monkeypatch.setattr(registry, "_copy_hashed", real)
    assert register(tmp_path).version == "1"


# --- promote and rollback ------------------------------------------------------------------------------------


def test_promote_makes_production_and_archives_previous(tmp_path):
    for seed in range(3):
        register(tmp_path, seed=seed)
    registry.promote("ner-demo", "1", actor="alice", note="first")
    assert registry.get_version("ner-demo").version == "1"
    registry.promote("ner-demo", "2", actor="bob")
    assert [(mv.version, mv.stage) for mv in registry.list_versions("ner-demo")] == \
        [("1", "archived"), ("2", "production"), ("3", "candidate")]
    assert registry.production_versions() == {"ner-demo": "2"}
    assert registry.stage_of("ner-demo", "1") == "archived"
    with session_scope() as session:
        rows = session.execute(select(ModelPromotion.version, ModelPromotion.promoted_by, ModelPromotion.note)
                               .order_by(ModelPromotion.id)).all()
    assert [tuple(r) for r in rows] == [("1", "alice", "first"), ("2", "bob", "")]
    events = audit.events(action="model_promote")
    assert [(e["actor"], e["detail"]["version"], e["detail"]["previous"]) for e in events] == \
        [("bob", "2", "1"), ("alice", "1", None)]
    assert audit.verify().ok
    with pytest.raises(RegistryError, match="already in production"):
        registry.promote("ner-demo", "2", actor="bob")


def test_rollback_restores_previous_and_steps_back(tmp_path):
    for seed in range(3):
        register(tmp_path, seed=seed)
    for version in ("1", "2", "3"):
        registry.promote("ner-demo", version, actor="alice")
    restored = registry.rollback("ner-demo", actor="carol")
    assert restored.version == "2" and restored.stage == "production"
    assert registry.stage_of("ner-demo", "3") == "archived"
    event = audit.events(action="model_rollback")[0]
    assert (event["actor"], event["detail"]["version"], event["detail"]["previous"]) == ("carol", "2", "3")
    assert registry.rollback("ner-demo", actor="carol").version == "1"  # a second rollback steps back again
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback("ner-demo", actor="carol")
    assert registry.production_versions() == {"ner-demo": "1"}


def test_rollback_never_returns_to_a_rolled_back_version(tmp_path):
    for seed in range(4):
        register(tmp_path, seed=seed)
    for version in ("1", "2", "3"):
        registry.promote("ner-demo", version, actor="a")
    registry.rollback("ner-demo", actor="a")  # 3 was bad
    registry.promote("ner-demo", "4", actor="a")
    assert registry.rollback("ner-demo", actor="a").version == "2"


def test_rollback_skips_versions_no_longer_present(tmp_path, medui_home):
    for seed in range(3):
        register(tmp_path, seed=seed)
    for version in ("1", "2", "3"):
        registry.promote("ner-demo", version, actor="a")
    shutil.rmtree(medui_home / "models" / "ner-demo" / "2")
    assert registry.rollback("ner-demo", actor="a").version == "1"


def test_rollback_without_history_errors(tmp_path):
    with pytest.raises(RegistryError, match="no model named ner-demo"):
        registry.rollback("ner-demo", actor="a")
    register(tmp_path)
    with pytest.raises(RegistryError, match="no production version of ner-demo"):
        registry.rollback("ner-demo", actor="a")
    registry.promote("ner-demo", "1", actor="a")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback("ner-demo", actor="a")
    assert registry.get_version("ner-demo").version == "1"
    assert audit.events(action="model_rollback") == []


# --- tampering and pickles ----------------------------------------------------------------------------------


def test_tampered_weights_are_refused_everywhere(tmp_path):
    mv = register(tmp_path)
    assert set(registry.load_state_dict(mv)) == {"linear.weight", "linear.bias"}
    flip_byte(mv.directory / "model.safetensors")
    with pytest.raises(RegistryError, match="model.safetensors does not match"):
        registry.verify_files(mv)
    with pytest.raises(RegistryError, match="model.safetensors does not match"):
        registry.load_state_dict(mv)
    with pytest.raises(RegistryError, match="model.safetensors does not match"):
        registry.promote("ner-demo", "1", actor="mallory")
    assert registry.stage_of("ner-demo", "1") == "candidate"
    refused = audit.events(action="model_promote")
    assert [(e["actor"], e["outcome"]) for e in refused] == [("mallory", "refused")]


def test_missing_or_unlisted_kind_of_file_is_refused(tmp_path):
    mv = register(tmp_path)
    (mv.directory / "config.json").unlink()
    with pytest.raises(RegistryError, match="file config.json is missing"):
        registry.verify_files(mv)


def test_tampered_rollback_target_is_refused(tmp_path):
    for seed in range(2):
        register(tmp_path, seed=seed)
    registry.promote("ner-demo", "1", actor="a")
    registry.promote("ner-demo", "2", actor="a")
    flip_byte(registry.get_version("ner-demo", "1").directory / "config.json", 0)
    with pytest.raises(RegistryError, match="config.json does not match"):
        registry.rollback("ner-demo", actor="a")
    assert registry.production_versions() == {"ner-demo": "2"}


class _Evil:
    """Unpickling this creates a marker file: proof that nothing was ever unpickled if it stays absent."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_named_safetensors_is_refused(tmp_path, medui_home):
    marker = tmp_path / "pwned"
    write_version(medui_home / "models", "evil", "1", payload=pickle.dumps(_Evil(marker), protocol=2))
    mv = registry.get_version("evil", "1")
    registry.verify_files(mv)  # the digest matches: the manifest was forged along with the file
    with pytest.raises(RegistryError, match="pickle payload"):
        registry.load_state_dict(mv)
    assert not marker.exists()


def test_torch_save_zip_named_safetensors_is_refused(tmp_path, medui_home):
    torch.save({"w": torch.zeros(2)}, tmp_path / "ckpt")
    write_version(medui_home / "models", "zipped", "1", payload=(tmp_path / "ckpt").read_bytes())
    with pytest.raises(RegistryError, match="torch.save"):
        registry.load_state_dict(registry.get_version("zipped", "1"))


@pytest.mark.parametrize("length", [200 * 1024 * 1024, 4096])
def test_oversized_or_overlong_safetensors_header_is_refused(medui_home, length):
    payload = struct.pack("<Q", length) + b"{}" + b"\0" * 64
    write_version(medui_home / "models", "big", "1", payload=payload)
    with pytest.raises(RegistryError, match="invalid safetensors header"):
        registry.load_state_dict(registry.get_version("big", "1"))


def test_valid_header_starting_with_0x80_still_loads(medui_home):
    """A header of 128 bytes makes the first byte 0x80, the pickle opcode: it must not be mistaken for one."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode().ljust(128)
    write_version(medui_home / "models", "odd", "1", payload=struct.pack("<Q", 128) + header + struct.pack("<2f", 1, 2))
    tensors = registry.load_state_dict(registry.get_version("odd", "1"))
    assert tensors["w"].tolist() == [1.0, 2.0]


def test_load_state_dict_picks_files(tmp_path):
    src = tmp_path / "multi"
    src.mkdir()
    files = {"a.safetensors": weights(src / "a.safetensors", 1), "b.safetensors": weights(src / "b.safetensors", 2)}
    mv = registry.register_version("multi", "image", files, base_model="x", method="full", labels=[], metrics={},
                                   provenance={}, actor="t")
    with pytest.raises(RegistryError, match="several weight files"):
        registry.load_state_dict(mv)
    loaded = registry.load_state_dict(mv, filename="b.safetensors")
    assert torch.equal(loaded["linear.weight"], torch.randn(3, 4, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(RegistryError, match="no file c.safetensors"):
        registry.load_state_dict(mv, filename="c.safetensors")


# --- import --------------------------------------------------------------------------------------------------


def test_import_hugging_face_folder(tmp_path, caplog):
    folder = tmp_path / "Tiny BERT"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"_name_or_path": "prajjwal1/bert-tiny", "id2label": {"1": "B-DRUG", "0": "O", "2": "I-DRUG"}}))
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "README.md").write_text("# card")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({}))  # left behind, never copied
    weights(folder / "model.safetensors", seed=5)
    with caplog.at_level(logging.WARNING):
        mv = registry.import_model(folder, task="ner", actor="admin")
    assert (mv.name, mv.version, mv.method, mv.task) == ("tiny-bert", "1", "imported", "ner")
    assert mv.labels == ["O", "B-DRUG", "I-DRUG"]
    assert mv.base_model == "prajjwal1/bert-tiny"
    assert sorted(f.path for f in mv.files) == ["config.json", "model.safetensors", "tokenizer_config.json",
                                                 "vocab.txt"]
    assert mv.provenance["source"] == str(folder) and mv.provenance["imported_by"] == "admin"
    assert len(mv.provenance["source_sha256"]) == 64
    assert "pytorch_model.bin" in caplog.text
    loaded = registry.load_state_dict(mv)
    assert torch.equal(loaded["linear.weight"], torch.randn(3, 4, generator=torch.Generator().manual_seed(5)))
    assert [e["detail"]["model"] for e in audit.events(action="model_import")] == ["tiny-bert"]
    again = registry.import_model(folder, task="ner", actor="admin", name="bert-ner", base_model="bert-base")
    assert (again.name, again.version, again.base_model) == ("bert-ner", "1", "bert-base")


def test_import_bin_only_folder_is_refused(tmp_path):
    folder = tmp_path / "old-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    with pytest.raises(RegistryError) as caught:
        registry.import_model(folder, task="ner", actor="admin")
    assert str(caught.value) == "pickled checkpoint (pytorch_model.bin) refused: convert it to safetensors"
    assert registry.list_versions() == []


def test_import_single_safetensors_file(tmp_path):
    mv = registry.import_model(weights(tmp_path / "ResNet_Tiny.safetensors"), task="image", actor="admin")
    assert (mv.name, mv.task, [f.path for f in mv.files]) == ("resnet_tiny", "image", ["ResNet_Tiny.safetensors"])
    source = (tmp_path / "ResNet_Tiny.safetensors").read_bytes()
    assert mv.provenance["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert set(registry.load_state_dict(mv)) == {"linear.weight", "linear.bias"}
    snap = tmp_path / "timm-resnet18"
    snap.mkdir()
    assert registry.import_model(weights(snap / "model.safetensors"), task="image", actor="a").name == "timm-resnet18"


def test_import_refuses_other_sources(tmp_path):
    with pytest.raises(RegistryError, match="no such file or folder"):
        registry.import_model(tmp_path / "nope", task="ner", actor="a")
    torch.save({}, tmp_path / "model.pt")
    with pytest.raises(RegistryError, match=r"pickled checkpoint \(model.pt\) refused"):
        registry.import_model(tmp_path / "model.pt", task="image", actor="a")
    (tmp_path / "bare").mkdir()
    with pytest.raises(RegistryError, match="no config.json"):
        registry.import_model(tmp_path / "bare", task="ner", actor="a")
    with pytest.raises(RegistryError, match="unknown task"):
        registry.import_model(tmp_path / "bare", task="speech", actor="a")


# --- shipped root and broken manifests ------------------------------------------------------------------------


def test_shipped_root_is_never_written(tmp_path, shipped, medui_home):
    write_version(shipped, "cxr", "1", stage="production", labels=["normal", "pneumonia"])
    before = snapshot(shipped)
    assert registry.get_version("cxr").shipped  # a shipped manifest may declare the default stage
    assert registry.production_versions() == {"cxr": "1"}
    registry.load_state_dict(registry.get_version("cxr", "1"))
    new = registry.register_version("cxr", "image", {"model.safetensors": weights(tmp_path / "w.safetensors", 3)},
                                    base_model="resnet", method="head-only", labels=[], metrics={}, provenance={},
                                    actor="t")
    assert new.directory == medui_home / "models" / "cxr" / "2"
    registry.promote("cxr", "2", actor="t")
    assert registry.stage_of("cxr", "1") == "archived"  # recorded in the database, not the manifest
    assert registry.rollback("cxr", actor="t").version == "1"  # back to the shipped default
    assert registry.production_versions() == {"cxr": "1"}
    assert snapshot(shipped) == before


def test_broken_manifests_are_skipped_with_a_warning(shipped, caplog):
    (shipped / "garbled" / "1").mkdir(parents=True)
    (shipped / "garbled" / "1" / "manifest.json").write_text("{not json")
    write_version(shipped, "misnamed", "1", name="other")
    write_version(shipped, "badtask", "1", task="speech")
    write_version(shipped, "nofiles", "1", files=[])
    write_version(shipped, "badsha", "1", files=[{"path": "model.safetensors", "sha256": "x", "bytes": 1}])
    (shipped / "nomanifest" / "1").mkdir(parents=True)
    write_version(shipped, "good", "1")
    (shipped / ".gitkeep").write_text("")
    with caplog.at_level(logging.WARNING, logger="medui.registry"):
        names = [mv.name for mv in registry.list_versions()]
    assert names == ["good"]
    for bad in ("garbled", "misnamed", "badtask", "nofiles", "badsha", "nomanifest"):
        assert bad in caplog.text
    with pytest.raises(RegistryError, match="no model named garbled"):
        registry.get_version("garbled", "1")
