"""A job trained under its task's default name, once promoted, is what the clinician page's loader serves.

Tiny jobs (a few steps, 64 px images, 64-token notes) in a temporary home; the shipped models are kept out.
"""

from __future__ import annotations

import pytest

from medui import registry
from medui.imaging import classify
from medui.notes import extract
from medui.training import JobSpec, run_job
from medui.training.tasks.image import ImageTask


@pytest.fixture
def no_loaded_models(monkeypatch):
    """Empty serving caches: they are keyed by name and version, which other tests' homes reuse."""
    monkeypatch.setattr(classify, "_CACHE", {})
    monkeypatch.setattr(extract, "_CACHE", {})


def test_image_jobs_default_to_the_imaging_pages_model_name():
    assert JobSpec(task="image").name == classify.MODEL_NAME == "chest-findings"


@pytest.mark.slow
def test_a_promoted_image_job_is_what_the_imaging_page_loads(shipped_models, no_loaded_models, monkeypatch):
    monkeypatch.setattr(ImageTask, "image_size", 64)
    fast = {"task": "image", "method": "head-only", "max_steps": 2, "batch_size": 4, "eval_steps": 2}
    first = run_job(JobSpec(**fast))
    assert first["model"] == "chest-findings"
    assert classify.load_classifier() is None  # a candidate is not served
    registry.promote("chest-findings", first["version"], actor="test")
    served = classify.load_classifier()
    assert served.version.version == first["version"]
    assert served.labels == registry.get_version("chest-findings", first["version"]).labels

    second = run_job(JobSpec(**fast, seed=11))
    registry.promote("chest-findings", second["version"], actor="test")
    # no restart, no cache clearing: the next call serves the newly promoted version
    assert classify.load_classifier().version.version == second["version"] != first["version"]


@pytest.mark.slow
def test_a_promoted_ner_job_is_what_the_notes_page_loads(shipped_models, no_loaded_models):
    job = run_job(JobSpec(task="ner", max_steps=2, batch_size=4, eval_steps=2, max_length=64))
    assert job["model"] == extract.MODEL_NAME == "notes-ner"
    with pytest.raises(registry.RegistryError):
        extract.load_model()  # only a candidate so far: nothing in production
    registry.promote("notes-ner", job["version"], actor="test")
    served = extract.load_model()
    labels = registry.get_version("notes-ner", job["version"]).labels
    assert (served.name, served.version) == ("notes-ner", job["version"])
    assert sorted({tag.split("-", 1)[-1] for tag in served.tags if tag != "O"}) == sorted(labels)
