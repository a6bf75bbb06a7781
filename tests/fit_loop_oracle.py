"""Test oracle: :meth:`balpm.model.PreferenceEnsemble.fit` written the plain way, one member at a time.

Each member is trained separately with ``torch.nn.Linear`` layers and its own AdamW, so the batched maths of
``fit`` (stacked weights, one optimiser, members dropped as they stop) can be checked against it
(tests/test_model.py) and timed against it (benchmarks/train.py puts tests/ on its path).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from balpm.ensemble_training import adamw, init_member, member_generators, split_member
from balpm.model import _ACTIVATIONS, PreferenceEnsemble


def fit_loop_reference(
    model: PreferenceEnsemble, emb_a: Any, emb_b: Any, labels: Any
) -> PreferenceEnsemble:
    """Fit ``model`` by training each member separately: ``torch.nn.Linear`` layers and one AdamW per member.

    Same initial weights, held-out slices and minibatch order as :meth:`PreferenceEnsemble.fit` (the same
    per-member generators, drawn in the same order), same loss, per-member early stopping that really stops the
    member. It exists as an independent check of the batched maths (tests) and as the baseline of
    ``benchmarks/train.py``; use :meth:`PreferenceEnsemble.fit` in practice.

    Returns
    -------
    PreferenceEnsemble
        ``model``, with learned state (``history_`` holds ``epochs_trained``, ``best_epoch``, ``best_val_loss``,
        ``seconds``).
    """
    t0 = time.perf_counter()
    A, B, Y, device = model._prepare_fit(emb_a, emb_b, labels)
    n, d = A.shape
    E = int(model.n_members)
    sizes = model._sizes(d)
    gens = member_generators(model.seed, E)
    act = _ACTIVATIONS[model.activation]
    n_val = model._n_val(n)
    n_train = n - n_val
    bs = int(model.batch_size)

    members = []
    epochs_trained = np.zeros(E, dtype=np.int64)
    best_epoch = np.zeros(E, dtype=np.int64)
    best_losses = np.full(E, np.nan)
    for e, g in enumerate(gens):
        init = init_member(g, sizes, model.init_std)
        layers = torch.nn.ModuleList()
        for (w, b), (d_i, d_o) in zip(init, zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(d_i, d_o)
            with torch.no_grad():
                lin.weight.copy_(w.T)
                lin.bias.copy_(b)
            layers.append(lin)
        layers.to(device)

        def reward(x: torch.Tensor, layers: torch.nn.ModuleList = layers) -> torch.Tensor:
            h = x
            for i, lin in enumerate(layers):
                h = lin(h)
                if i < len(layers) - 1:
                    h = act(h)
            return h.squeeze(-1)

        tr_idx, va_idx = split_member(g, n, n_val, bool(model.bootstrap))
        va_idx = va_idx.to(device)
        opt = adamw(list(layers.parameters()), model.lr, model.weight_decay, device)
        best_state = [p.detach().clone() for p in layers.parameters()]
        best = math.inf
        bad = 0
        for epoch in range(1, int(model.max_epochs) + 1):
            order = tr_idx[torch.randperm(n_train, generator=g)].to(device)
            for start in range(0, n_train, bs):
                idx = order[start : start + bs]
                logit = reward(A[idx]) - reward(B[idx])
                loss = F.binary_cross_entropy_with_logits(logit, Y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            epochs_trained[e] = epoch
            if n_val == 0:
                continue
            with torch.no_grad():
                vl = float(F.binary_cross_entropy_with_logits(reward(A[va_idx]) - reward(B[va_idx]), Y[va_idx]))
            if vl < best:
                best, bad, best_epoch[e] = vl, 0, epoch
                best_state = [p.detach().clone() for p in layers.parameters()]
            else:
                bad += 1
                if bad >= int(model.patience):
                    break
        if n_val > 0:
            with torch.no_grad():
                for p, s in zip(layers.parameters(), best_state):
                    p.copy_(s)
            best_losses[e] = best
        members.append(layers)

    stacked = []
    for i in range(len(sizes) - 1):
        w = torch.stack([m[i].weight.detach().T for m in members])
        b = torch.stack([m[i].bias.detach() for m in members]).unsqueeze(1)
        stacked.append((w, b))
    model._set_learned(stacked, d_in=d, device=device, n_train=n)
    model.history_ = {
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch,
        "best_val_loss": best_losses,
        "n_train": n_train,
        "n_val": n_val,
        "seconds": time.perf_counter() - t0,
    }
    return model
