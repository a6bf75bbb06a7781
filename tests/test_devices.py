"""balpm.devices.select_device: the one device rule of the embedder and the preference model."""

from __future__ import annotations

import pytest
import torch

from balpm.devices import select_device


def _auto() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def test_named_device_wins():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    assert select_device("cuda:1") == torch.device("cuda", 1)  # named, not probed: no GPU needed to build it


@pytest.mark.parametrize("auto", [None, ""])
def test_auto_picks_cuda_then_mps_then_cpu(auto, monkeypatch):
    assert select_device(auto).type == _auto()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device(auto) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(auto) == torch.device("cuda")


def test_embedder_and_model_share_it():
    import balpm.embed
    import balpm.model

    assert balpm.embed.select_device is select_device and balpm.model.select_device is select_device
