import pytest
import torch

from medui.device import inference_dtype, pick_device


def test_cpu_is_chosen_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == "cpu"


def test_cuda_comes_first_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == "cuda"


def test_override_is_validated(monkeypatch):
    monkeypatch.setenv("MEDUI_DEVICE", "CPU")
    assert pick_device() == "cpu"
    monkeypatch.setenv("MEDUI_DEVICE", "tpu")
    with pytest.raises(ValueError, match="MEDUI_DEVICE must be one of"):
        pick_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("MEDUI_DEVICE", "cuda:0")
    with pytest.raises(ValueError, match="no CUDA device"):
        pick_device()


def test_half_precision_only_on_gpus_that_allow_it():
    assert inference_dtype("cuda") == torch.float16
    assert inference_dtype("cuda:1", supports_half=False) == torch.float32
    assert inference_dtype("cpu") == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_gpu_is_picked_and_described():
    from medui.device import describe

    assert pick_device() == "cuda" and describe("cuda").startswith("GPU (")
