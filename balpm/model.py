"""The Bayesian preference model: a deep ensemble of Bradley-Terry reward heads, trained as one batched computation.

Model
-----
Each member ``e`` is an MLP reward head ``r_e(x)`` on a frozen embedding ``x`` of prompt + completion, and

    P_e(A ≻ B | prompt) = σ(r_e(x_A) − r_e(x_B)).

The model is antisymmetric by construction (``P(A ≻ B) = 1 − P(B ≻ A)`` exactly, up to rounding), so no swap
augmentation of the training pairs is needed: a swapped pair gives the same loss and the same gradient.

The E members are a deep ensemble (Lakshminarayanan et al., 2017), the approximate posterior that BAL-PM
(Melo et al., 2024) uses for BALD. Every member is initialised from its own seed, sees its own shuffled minibatches
and its own held-out slice, and the whole ensemble is retrained from scratch on every :meth:`PreferenceEnsemble.fit`.

Batched training
----------------
Weights are stacked along a leading member axis (``W_l`` of shape ``(E, d_in, d_out)``), so one
``torch.baddbmm`` per layer runs all members at once. The loss is the *sum* over members of each member's mean
binary cross-entropy: member ``e``'s parameters receive exactly the gradient of its own loss, and AdamW is
element-wise, so one optimiser over the stacked tensors equals E separate optimisers. ``fit_loop_reference``
(``tests/fit_loop_oracle.py``) trains the same members one at a time with ``torch.nn.Linear`` and a per-member
optimiser; the tests check both give the same predictions. The loop's parts are in :mod:`balpm.ensemble_training`.

Defaults
--------
The paper's configuration is hidden (2048, 256), tanh, N(0, 0.01²) weights, AdamW at learning rate 3e-5, batch 32,
patience 3 (``balpm.config.PRESETS["paper"]``). We keep tanh, the initialisation, batch size and patience, but
default to ``hidden=(64,)``, ``lr=1e-3`` and ``max_epochs=15``: a small head that learns within a few epochs from
few labels, so a labelling Step stays interactive on a CPU ("Ensemble training" in ``benchmarks/README.md``); and
to bootstrapped members, whose all-label curve does not fall ("Model study" there). Pass ``hidden=(2048, 256),
lr=3e-5, max_epochs=100, bootstrap=False`` for the paper's setting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from balpm.devices import select_device
from balpm.ensemble_training import (EarlyStopping, adamw, member_generators, prior_init, split_member,
                                     stacked_init, train_epoch)

__all__ = [
    "NotFittedError",
    "PreferenceEnsemble",
]

_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
}

#: Constructor parameters, in order; they make up ``state_dict()["params"]``.
_PARAM_NAMES = (
    "n_members",
    "hidden",
    "activation",
    "init_std",
    "lr",
    "weight_decay",
    "batch_size",
    "max_epochs",
    "patience",
    "val_fraction",
    "min_val_labels",
    "bootstrap",
    "prior_scale",
    "device",
    "seed",
)


class NotFittedError(ValueError, AttributeError):
    """Raised when predicting with an ensemble that was neither fitted nor loaded (as in scikit-learn)."""


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a float numpy array, with a clear error for non-numeric input."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    return arr


def _check_pair_embeddings(emb_a: Any, emb_b: Any, d_in: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate two (N, d) embedding matrices of the same shape (and width ``d_in`` when given)."""
    a = _as_float_array(emb_a, "emb_a")
    b = _as_float_array(emb_b, "emb_b")
    for name, arr in (("emb_a", a), ("emb_b", b)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array (N, d), got shape {arr.shape}")
    if a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must have the same shape, got {a.shape} and {b.shape}")
    if d_in is not None and a.shape[1] != d_in:
        raise ValueError(f"embeddings have width {a.shape[1]}, but the model was fitted on width {d_in}")
    if a.shape[1] == 0:
        raise ValueError("embeddings must have at least one column")
    return a, b


class PreferenceEnsemble:
    """A deep ensemble of Bradley-Terry MLP reward heads on frozen embeddings, all members trained as one batch.

    The constructor only stores parameters (scikit-learn style); :meth:`fit` retrains every member from scratch
    and returns ``self``; learned state ends in ``_``.

    Parameters
    ----------
    n_members
        Ensemble size E (paper: 5).
    hidden
        Hidden layer widths of each reward head. Default (64,) instead of the paper's (2048, 256): on MiniLM
        embeddings of HH-RLHF it matched or beat every other head in test log-likelihood at 200 and at 2,000
        labels (3 seeds), and costs about 40x less compute, which keeps a 2,312-pair fit on a 2-core CPU within
        seconds ((2048, 256) took 30 s there). (256, 64) stayed at chance with 200 labels.
    activation
        ``"tanh"`` (paper), ``"relu"``, ``"gelu"``, ``"silu"`` or ``"sigmoid"``.
    init_std
        Standard deviation of the normal weight initialisation (paper: 0.01); biases start at zero.
    lr
        AdamW learning rate. Default 1e-3 instead of the paper's 3e-5: same test log-likelihood with 2,000 labels
        in less than half the epochs; with 200 labels and a 15-epoch cap, 3e-5 stays at chance (it needs ~28
        epochs) while 1e-3 matches the paper's converged model (``benchmarks/README.md``, "Ensemble training").
    weight_decay
        AdamW decoupled weight decay.
    batch_size
        Minibatch size in pairs (paper: 32).
    max_epochs
        Cap on the epochs of one fit, also the fixed epoch count when there are fewer than ``min_val_labels``
        labels (no held-out slice then).
    patience
        Stop a member after this many epochs without a lower held-out loss (paper: 3); the member keeps the
        weights of its best epoch.
    val_fraction
        Fraction of the labelled pairs each member holds out for early stopping (at least 2 pairs). Each member
        draws its *own* random slice: with the tens of labels of early active-learning rounds a shared slice
        would hide the same labels from every member, while own slices let the ensemble as a whole learn from
        every label and add bootstrap-like diversity between members.
    min_val_labels
        Below this many labels, train ``max_epochs`` epochs on all labels without a held-out slice.
    bootstrap
        Train each member on a bootstrap resample of its training part (bootstrapped members), not on all of it.
        Default True since issue 12 (``benchmarks/README.md``, "Model study"): plain members fell from −0.6829 with
        832 random qa-feedback labels to −0.7020 with all 2,091 (6 seeds); bootstrapped members hold the all-label
        point (−0.6795 → −0.6836) and are as good or better at 832 labels on hh-rlhf and qa-feedback (0.003 nats
        worse on hh-rlhf:harmless-base). The paper's deep ensemble is plain: ``bootstrap=False``.
    prior_scale
        Randomised prior functions (Osband et al. 2018): each member's reward is its trained head plus
        ``prior_scale`` times its own fixed random network (:func:`balpm.ensemble_training.prior_init`); 0: none.
    device
        ``None`` picks CUDA, then MPS, then CPU (:func:`balpm.devices.select_device`).
    seed
        Seeds every member's initialisation, held-out slice and minibatch order (one ``torch.Generator`` per
        member, made in each ``fit``; the global RNG is never touched). Deterministic on CPU.

    Attributes
    ----------
    d_in_ : int
        Embedding width seen in ``fit``.
    weights_ : list of numpy arrays
        Per layer ``(E, d_in, d_out)`` float32 (copies; the live tensors are on ``device_``).
    device_ : torch.device
    n_train_ : int
        Labelled pairs seen by the last fit.
    history_ : dict
        ``epochs_trained`` (E,) int, epochs each member ran before stopping; ``best_epoch`` (E,) int (1-based;
        0 when no held-out slice); ``best_val_loss`` (E,) float (NaN without a held-out slice); ``val_loss`` and
        ``train_loss`` (epochs, E) per-epoch curves (NaN after a member stopped); ``n_train``, ``n_val``;
        ``seconds``.
    """

    def __init__(
        self,
        n_members: int = 5,
        hidden: Sequence[int] = (64,),
        activation: str = "tanh",
        init_std: float = 0.01,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 15,
        patience: int = 3,
        val_fraction: float = 0.1,
        min_val_labels: int = 10,
        bootstrap: bool = True,
        prior_scale: float = 0.0,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        self.n_members = n_members
        self.hidden = hidden
        self.activation = activation
        self.init_std = init_std
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.min_val_labels = min_val_labels
        self.bootstrap = bootstrap
        self.prior_scale = prior_scale
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as a dict (scikit-learn style)."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def set_params(self, **params: Any) -> PreferenceEnsemble:
        """Set constructor parameters; returns ``self``. Learned state is kept until the next ``fit``."""
        for name, value in params.items():
            if name not in _PARAM_NAMES:
                raise ValueError(f"unknown parameter {name!r}; valid: {', '.join(_PARAM_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = PreferenceEnsemble().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"PreferenceEnsemble({', '.join(changed)})"

    def _validate_params(self) -> None:
        """Fail early with a clear message on parameters that cannot train."""
        if int(self.n_members) < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")
        if any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(self.hidden)}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if int(self.batch_size) < 1 or int(self.max_epochs) < 1 or int(self.patience) < 1:
            raise ValueError("batch_size, max_epochs and patience must be >= 1")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if float(self.lr) <= 0 or min(float(self.weight_decay), float(self.init_std), float(self.prior_scale)) < 0:
            raise ValueError("lr must be > 0, weight_decay, init_std and prior_scale >= 0")

    def _sizes(self, d_in: int) -> list[int]:
        return [int(d_in), *(int(h) for h in self.hidden), 1]

    def _n_val(self, n: int) -> int:
        """Held-out pairs per member: 0 below ``min_val_labels``, else ``val_fraction·n`` (at least 2)."""
        if n < int(self.min_val_labels):
            return 0
        return min(n - 1, max(2, int(round(float(self.val_fraction) * n))))

    # ------------------------------------------------------------------ maths
    def _forward(self, params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Rewards ``(E, M)`` of inputs ``x``: ``(E, M, d)`` per-member rows, or ``(M, d)`` shared by all members.
        Layers after the head's own are the fixed prior network (``prior_scale``), added scaled."""
        n_head = len(tuple(self.hidden)) + 1
        if len(params) > n_head:
            return self._mlp(params[:n_head], x) + float(self.prior_scale) * self._mlp(params[n_head:], x)
        return self._mlp(params, x)

    def _initial_params(self, gens: list[torch.Generator], sizes: list[int], device: torch.device
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each member's trainable initial layers, then its fixed prior network's when ``prior_scale`` > 0."""
        params = stacked_init(gens, sizes, self.init_std, device)
        if float(self.prior_scale) > 0:
            params += prior_init(member_generators(self.seed, len(gens), stream=1), sizes, device)
        return params

    def _mlp(self, params: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        act = _ACTIVATIONS[self.activation]
        h = x
        last = len(params) - 1
        for i, (w, b) in enumerate(params):
            if h.dim() == 2:  # shared input: (M, d) @ (E, d, h) broadcasts to (E, M, h)
                h = torch.matmul(h, w) + b
            else:
                h = torch.baddbmm(b, h, w)
            if i < last:
                h = act(h)
        return h.squeeze(-1)

    def _chunk_rows(self) -> int:
        """Rows per inference chunk, so one hidden activation stays near 64 MB."""
        widest = max([1, *(int(h) for h in self.hidden)])
        return max(256, (1 << 24) // (int(self.n_members) * widest))

    # ------------------------------------------------------------------ fit
    def _prepare_fit(
        self, emb_a: Any, emb_b: Any, labels: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.device]:
        """Validate inputs and move them to the device as float32 tensors."""
        self._validate_params()
        a, b = _check_pair_embeddings(emb_a, emb_b)
        y = _as_float_array(labels, "labels")
        if y.ndim != 1:
            raise ValueError(f"labels must be a 1-D array (N,), got shape {y.shape}")
        if y.shape[0] != a.shape[0]:
            raise ValueError(f"labels has {y.shape[0]} entries but emb_a has {a.shape[0]} rows")
        if a.shape[0] < 1:
            raise ValueError("fit needs at least one labelled pair")
        y = y.astype(np.float64)
        if not np.all((y == 0) | (y == 1)):
            bad = y[~((y == 0) | (y == 1))][:3]
            raise ValueError(f"labels must be 0 or 1 (1 = A preferred), found {bad.tolist()}")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ValueError("embeddings contain NaN or infinite values")
        device = select_device(self.device)
        to = dict(device=device, dtype=torch.float32)
        return (
            torch.as_tensor(np.ascontiguousarray(a), **to),
            torch.as_tensor(np.ascontiguousarray(b), **to),
            torch.as_tensor(y, **to),
            device,
        )

    def fit(self, emb_a: Any, emb_b: Any, labels: Any) -> PreferenceEnsemble:
        """Train every member from scratch on the labelled pairs, as one batched computation.

        Parameters
        ----------
        emb_a, emb_b
            ``(N, d)`` float16/float32/float64 arrays: embeddings of prompt + completion A and prompt + completion B.
        labels
            ``(N,)`` in {0, 1}: 1 when A is preferred.

        Returns
        -------
        PreferenceEnsemble
            ``self``, fitted.

        Notes
        -----
        Early stopping keeps, per member, a snapshot of the weights of its best held-out epoch. Once a member has
        stopped, the batched step runs only the members still training (``index_select`` on the member axis; the
        stopped ones get zero gradients and their live weights are discarded), until every member has stopped
        or ``max_epochs``; then each member takes its snapshot. This is exactly what separate training with
        per-member early stopping gives (members never interact), without spending compute on stopped members.
        """
        t0 = time.perf_counter()
        A, B, Y, device = self._prepare_fit(emb_a, emb_b, labels)
        n, d = A.shape
        E = int(self.n_members)
        sizes = self._sizes(d)
        gens = member_generators(self.seed, E)
        params = self._initial_params(gens, sizes, device)  # each member's own init, stacked on member axis
        flat = [t for wb in params[: len(sizes) - 1] for t in wb]  # trained; a prior network's layers follow

        n_val = self._n_val(n)
        splits = [split_member(g, n, n_val, bool(self.bootstrap)) for g in gens]
        train_idx = torch.stack([s[0] for s in splits])  # (E, n_train) on CPU
        val_idx = torch.stack([s[1] for s in splits]).to(device)  # (E, n_val)
        n_train = n - n_val

        opt = adamw(flat, self.lr, self.weight_decay, device)
        use_val = n_val > 0
        stopping = EarlyStopping(flat, int(self.patience))
        epochs_trained = np.zeros(E, dtype=np.int64)
        train_curve: list[np.ndarray] = []
        val_curve: list[np.ndarray] = []

        for epoch in range(1, int(self.max_epochs) + 1):
            order = torch.stack([torch.randperm(n_train, generator=g) for g in gens])
            epoch_idx = torch.gather(train_idx, 1, order).to(device)  # (E, n_train) each member its own order
            active = ~stopping.stopped
            loss_sum = train_epoch(self._forward, params, opt, A, B, Y, epoch_idx, active, self.batch_size)
            epochs_trained[active] = epoch
            tr = np.full(E, np.nan)
            tr[active] = (loss_sum / n_train).cpu().numpy()
            train_curve.append(tr)
            if not use_val:
                val_curve.append(np.full(E, np.nan))
                continue
            val_curve.append(stopping.update(self._val_loss(params, A, B, Y, val_idx), flat, epoch))
            if stopping.stopped.all():
                break

        final = stopping.best if use_val else [t.detach() for t in flat]
        self._set_learned(
            [(final[2 * i], final[2 * i + 1]) for i in range(len(sizes) - 1)] + params[len(sizes) - 1 :],
            d_in=d,
            device=device,
            n_train=n,
        )
        self.history_ = {
            "epochs_trained": epochs_trained,
            "best_epoch": stopping.best_epoch,
            "best_val_loss": stopping.best_loss.cpu().numpy().astype(np.float64) if use_val else np.full(E, np.nan),
            "train_loss": np.array(train_curve).reshape(-1, E),
            "val_loss": np.array(val_curve).reshape(-1, E),
            "n_train": n_train,
            "n_val": n_val,
            "seconds": time.perf_counter() - t0,
        }
        return self

    @torch.no_grad()
    def _val_loss(
        self, params: list[tuple[torch.Tensor, torch.Tensor]], A: torch.Tensor, B: torch.Tensor, Y: torch.Tensor,
        val_idx: torch.Tensor,
    ) -> torch.Tensor:
        """Each member's mean loss on its own held-out pairs ``val_idx`` (E, n_val): (E,)."""
        n_val = val_idx.shape[1]
        r = self._forward(params, torch.cat([A[val_idx], B[val_idx]], dim=1))
        return F.binary_cross_entropy_with_logits(r[:, :n_val] - r[:, n_val:], Y[val_idx], reduction="none").mean(1)

    def _set_learned(
        self, params: list[tuple[torch.Tensor, torch.Tensor]], *, d_in: int, device: torch.device, n_train: int
    ) -> None:
        """Store learned weights: W (E, d_in, d_out), b (E, 1, d_out), detached, on ``device``."""
        self._params_ = [(w.detach().to(device).contiguous(), b.detach().to(device).contiguous()) for w, b in params]
        self.d_in_ = int(d_in)
        self.device_ = device
        self.n_train_ = int(n_train)

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "_params_"):
            raise NotFittedError("this PreferenceEnsemble is not fitted yet: call fit() or load_state_dict() first")

    @property
    def weights_(self) -> list[np.ndarray]:
        """Per-layer weights ``(E, d_in, d_out)`` as float32 numpy copies."""
        self._check_fitted()
        return [w.cpu().numpy().copy() for w, _ in self._params_]

    def _rewards_tensor(self, x: np.ndarray) -> torch.Tensor:
        """Rewards ``(E, N)`` float32 on CPU, computed in chunks on the device."""
        out = []
        step = self._chunk_rows()
        with torch.inference_mode():
            for start in range(0, x.shape[0], step):
                chunk = torch.as_tensor(x[start : start + step], dtype=torch.float32).to(self.device_)
                out.append(self._forward(self._params_, chunk).float().cpu())
        if not out:
            return torch.zeros((len(self._params_[0][0]), 0), dtype=torch.float32)
        return torch.cat(out, dim=1)

    def last_hidden(self, emb: Any) -> np.ndarray:
        """Each member's last hidden activations ``(E, N, h)`` float64, the input of its output layer (the embedding
        itself for a linear head; a prior network is left out): the features of a last-layer Laplace posterior."""
        self._check_fitted()
        x = torch.as_tensor(_as_float_array(emb, "emb"), dtype=torch.float32).to(self.device_)
        act = _ACTIVATIONS[self.activation]
        h = x.expand(len(self._params_[0][0]), *x.shape)
        with torch.inference_mode():
            for w, b in self._params_[: len(tuple(self.hidden))]:
                h = act(torch.baddbmm(b, h, w))
        return h.double().cpu().numpy()

    def reward(self, emb: Any) -> np.ndarray:
        """Per-member rewards ``r_e(x)`` of prompt + completion embeddings.

        Parameters
        ----------
        emb
            ``(N, d)`` float array.

        Returns
        -------
        numpy.ndarray
            ``(E, N)`` float64. Only differences of rewards for the same prompt are meaningful (Bradley-Terry).
        """
        self._check_fitted()
        x = _as_float_array(emb, "emb")
        if x.ndim != 2:
            raise ValueError(f"emb must be a 2-D array (N, d), got shape {x.shape}")
        if x.shape[1] != self.d_in_:
            raise ValueError(f"emb has width {x.shape[1]}, but the model was fitted on width {self.d_in_}")
        return self._rewards_tensor(x).numpy().astype(np.float64)

    def predict_member_logits(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """Per-member preference logits ``r_e(a) − r_e(b)``, shape ``(E, N)`` float64."""
        self._check_fitted()
        a, b = _check_pair_embeddings(emb_a, emb_b, self.d_in_)
        out = []
        step = self._chunk_rows() // 2 or 1
        with torch.inference_mode():
            for start in range(0, a.shape[0], step):
                stop = start + step
                x = torch.as_tensor(np.concatenate([a[start:stop], b[start:stop]]), dtype=torch.float32)
                r = self._forward(self._params_, x.to(self.device_)).cpu().double()
                m = r.shape[1] // 2
                out.append(r[:, :m] - r[:, m:])
        if not out:
            return np.zeros((len(self._params_[0][0]), 0))
        return torch.cat(out, dim=1).numpy()

    def predict_member_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """P_e(A ≻ B) for every member, shape ``(E, N)`` float64: the input of :mod:`balpm.uncertainty`.

        The sigmoid is taken in float64, so ``p(A, B) = 1 − p(B, A)`` holds to float64 rounding.
        """
        logits = self.predict_member_logits(emb_a, emb_b)
        return 1.0 / (1.0 + np.exp(-logits))

    def predict_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """Ensemble predictive P(A ≻ B) = mean over members, shape ``(N,)`` float64."""
        return self.predict_member_proba(emb_a, emb_b).mean(axis=0)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and learned state as a flat dict of numpy arrays (``np.savez(path, **d)`` or ``torch.save``).

        Keys: ``params`` (0-d str array, JSON of the constructor parameters), ``d_in``, ``n_train``,
        ``n_layers``, ``W{i}`` ``(E, d_in, d_out)`` and ``b{i}`` ``(E, 1, d_out)`` float32, and
        ``history.{key}`` for the array entries of ``history_`` (when fitted).
        """
        params = self.get_params()
        params["hidden"] = [int(h) for h in params["hidden"]]
        params["device"] = None if params["device"] is None else str(params["device"])
        d: dict[str, np.ndarray] = {"params": np.array(json.dumps(params))}
        if not hasattr(self, "_params_"):
            return d
        d["d_in"] = np.array(self.d_in_, dtype=np.int64)
        d["n_train"] = np.array(self.n_train_, dtype=np.int64)
        d["n_layers"] = np.array(len(self._params_), dtype=np.int64)
        for i, (w, b) in enumerate(self._params_):
            d[f"W{i}"] = w.cpu().numpy().copy()
            d[f"b{i}"] = b.cpu().numpy().copy()
        for key, value in getattr(self, "history_", {}).items():
            d[f"history.{key}"] = np.asarray(value)
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> PreferenceEnsemble:
        """Restore parameters and learned state from :meth:`state_dict` (or an ``np.load`` of its savez file).

        The ``device`` parameter is *not* restored (a model saved on a GPU machine loads on a CPU one); the
        weights go to this object's device. Predictions are identical to those of the saved model.

        Returns
        -------
        PreferenceEnsemble
            ``self``.
        """
        if "params" not in state:
            raise ValueError("not a PreferenceEnsemble state dict: no 'params' entry")
        params = json.loads(str(np.asarray(state["params"])))
        params.pop("device", None)
        params["hidden"] = tuple(params["hidden"])
        params.setdefault("bootstrap", False)  # saved before the setting existed: plain members
        self.set_params(**{k: v for k, v in params.items() if k in _PARAM_NAMES})
        if "n_layers" not in state:
            for attr in ("_params_", "d_in_", "device_", "n_train_", "history_"):
                self.__dict__.pop(attr, None)
            return self
        device = select_device(self.device)
        layers = []
        for i in range(int(np.asarray(state["n_layers"]))):
            w = torch.as_tensor(np.asarray(state[f"W{i}"]), dtype=torch.float32)
            b = torch.as_tensor(np.asarray(state[f"b{i}"]), dtype=torch.float32)
            layers.append((w, b))
        if layers[0][0].shape[0] != int(self.n_members):
            raise ValueError(f"state has {layers[0][0].shape[0]} members but params say {self.n_members}")
        self._set_learned(
            layers, d_in=int(np.asarray(state["d_in"])), device=device, n_train=int(np.asarray(state["n_train"]))
        )
        history = {}
        for key in state.keys():
            if key.startswith("history."):
                value = np.asarray(state[key])
                history[key[len("history.") :]] = value.item() if value.ndim == 0 else value.copy()
        self.history_ = history
        return self

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PreferenceEnsemble:
        """A new ensemble restored from :meth:`state_dict`."""
        return cls().load_state_dict(state)
