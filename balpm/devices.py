"""Which torch device to compute on: one rule for the embedder and the preference model.

CUDA, then Apple MPS, then CPU, unless the caller names one: the fastest device available is the useful default.
torch is imported on first call, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["select_device"]


def select_device(device: Any = None) -> torch.device:
    """The torch device to use: ``device`` if given, else CUDA, then Apple MPS, then CPU.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` or ``""`` (auto), or anything ``torch.device`` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``).

    Returns
    -------
    torch.device
    """
    import torch

    if device is not None and device != "":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
