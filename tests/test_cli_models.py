"""`python -m medui models ...`: exit codes, JSON on stdout, one-line errors on stderr."""

from __future__ import annotations

import getpass
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medui import audit


@pytest.fixture(autouse=True)
def shipped(shipped_models) -> Path:
    return shipped_models


def hf_folder(tmp_path: Path, name: str = "bert-ner", seed: int = 0) -> Path:
    folder = tmp_path / f"{name}-{seed}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"id2label": {"0": "O", "1": "B-DRUG"}}))
    gen = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(2, 2, generator=gen)}, str(folder / "model.safetensors"))
    return folder



def run_json(cli, *argv: str):
    code, out, err = cli(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_fails(cli, fragment: str, *argv: str) -> None:
    """Exit code 1 and exactly one `error: ...` line on stderr."""
    code, _out, err = cli(*argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err


def test_import_list_show(tmp_path, cli):
    assert run_json(cli, "models", "list") == []
    imported = run_json(cli, "models", "import", str(hf_folder(tmp_path)), "--task", "ner", "--name", "bert-ner")
    assert (imported["name"], imported["version"], imported["stage"]) == ("bert-ner", "1", "candidate")
    assert imported["labels"] == ["O", "B-DRUG"] and imported["method"] == "imported"
    run_json(cli, "models", "import", str(hf_folder(tmp_path, seed=1)), "--task", "ner", "--name", "bert-ner",
             "--base-model", "bert-base")
    listed = run_json(cli, "models", "list")
    assert [(m["name"], m["version"]) for m in listed] == [("bert-ner", "1"), ("bert-ner", "2")]
    assert run_json(cli, "models", "list", "--name", "other") == []
    shown = run_json(cli, "models", "show", "bert-ner", "2")
    assert shown["base_model"] == "bert-base" and shown["files"][0]["sha256"]
    assert shown == listed[1]

    code, out, _ = cli("models", "list")
    assert code == 0 and out.splitlines()[0].split()[:5] == ["NAME", "VERSION", "TASK", "METHOD", "STAGE"]
    code, out, _ = cli("models", "show", "bert-ner", "1")
    assert code == 0 and "bert-ner version 1 (candidate, trained)" in out and "model.safetensors" in out

    assert_fails(cli, "no production version of bert-ner", "models", "show", "bert-ner")
    assert_fails(cli, "bert-ner has no version 9", "models", "show", "bert-ner", "9")
    assert_fails(cli, "no model named nope", "models", "show", "nope")


def test_promote_rollback_and_audit_actor(tmp_path, cli):
    for seed in range(2):
        run_json(cli, "models", "import", str(hf_folder(tmp_path, seed=seed)), "--task", "ner", "--name", "m")
    promoted = run_json(cli, "models", "promote", "m", "1")
    assert (promoted["version"], promoted["stage"]) == ("1", "production")
    code, out, _ = cli("models", "promote", "m", "2", "--actor", "cli:alice")
    assert code == 0 and "m version 2 is now in production (version 1 archived)" in out
    assert run_json(cli, "models", "show", "m")["version"] == "2"
    rolled = run_json(cli, "models", "rollback", "m", "--actor", "cli:bob")
    assert (rolled["version"], rolled["stage"]) == ("1", "production")
    assert run_json(cli, "models", "show", "m", "2")["stage"] == "archived"
    assert_fails(cli, "nothing to roll back to", "models", "rollback", "m")

    actors = [e["actor"] for e in audit.events(action="model_promote")]
    assert actors == ["cli:alice", "cli:" + getpass.getuser()]
    assert [e["actor"] for e in audit.events(action="model_rollback")] == ["cli:bob"]


def test_verify_reports_tampering_with_exit_code_1(tmp_path, cli):
    imported = run_json(cli, "models", "import", str(hf_folder(tmp_path)), "--task", "ner", "--name", "m")
    assert run_json(cli, "models", "verify", "m", "1") == {"name": "m", "version": "1", "ok": True, "files": 2}
    weights = Path(imported["directory"]) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert_fails(cli, "model.safetensors does not match", "models", "verify", "m", "1")
    code, out, err = cli("models", "verify", "m", "1", "--json")
    assert code == 1 and "model.safetensors" in json.loads(out)["error"]
    assert_fails(cli, "model.safetensors does not match", "models", "promote", "m", "1")


def test_import_errors_are_one_line(tmp_path, cli):
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    assert_fails(cli, "pickled checkpoint (pytorch_model.bin) refused: convert it to safetensors",
                 "models", "import", str(folder), "--task", "ner")
    assert_fails(cli, "unknown task 'speech'", "models", "import", str(hf_folder(tmp_path)), "--task", "speech")
    assert_fails(cli, "no such file or folder", "models", "import", str(tmp_path / "missing"), "--task", "ner")
    assert run_json(cli, "models", "list") == []
