"""Settings by concern, as trl does: the pool, the embedding model, the ensemble and the acquisition policy;
and the session config (``session.json``) that nests them.

Why: a run (:class:`balpm.experiment.ExperimentConfig`) and the command line each used to declare the embedding
model, its max length, batch size and device, the ensemble settings and the pool's seed on their own, so a change
had to be made in several places. Each concern is declared once here; the configs that need it nest it, and
:mod:`balpm.cli` builds every command's options from these fields (their ``help`` metadata).

``metadata`` keys read by the option builder: ``help``; ``type`` (a parser of the option's text, for tuples);
``flags`` (extra option strings kept for older command lines, e.g. ``--model`` for ``embedding_model``);
``metavar`` (the value's name in ``--help``, default the field's name in capitals).

A command's own options, which no run or session stores, are declared here too, in one dataclass per command
(:class:`EmbedCommandConfig`, :class:`CheckCommandConfig`), so every option comes from one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PoolConfig", "EmbeddingConfig", "EnsembleConfig", "AcquisitionConfig", "SessionConfig", "int_tuple",
           "EmbedCommandConfig", "CheckCommandConfig", "CONCERNS", "PRESETS", "preset_settings"]


def int_tuple(text: str) -> tuple[int, ...]:
    """``"2048,256"`` → ``(2048, 256)`` (the option parser of tuple fields)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    return tuple(int(p) for p in parts)


@dataclass
class PoolConfig:
    """Which pairs: the source, its sample and its held-out split (one seed for the A/B coin, sample and split)."""

    dataset: str = field(default="hh-rlhf:harmless-base", metadata={
        "help": "pool file or built-in name (hh-rlhf, hh-rlhf:harmless-base, qa-feedback, ...)"})
    max_pairs: int | None = field(default=2000, metadata={
        "help": "sample whole prompt groups down to about this many pairs before splitting (0 or none: all)"})
    test_fraction: float = field(default=0.2, metadata={"help": "fraction of pairs (whole groups) held out for test"})
    strict: bool = field(default=False, metadata={
        "help": "refuse a pool at the first record its format would drop (empty completion, tie, duplicate ...) "
                "instead of dropping and counting it"})
    data_seed: int = field(default=0, metadata={
        "help": "seed of the A/B coin, the pool sample and the train/test split: fixed across --seed values so "
                "that every seed is scored on the same test set"})
    columns: str = field(default="", metadata={
        "help": "map the file's own column names: prompt=question,chosen=answer_good,rejected=answer_bad (targets: "
                "prompt, chosen, rejected, completion_a, completion_b, label, id, group) (default: the file's own "
                "names)"})


@dataclass
class EmbeddingConfig:
    """The frozen embedding model and how it is run (:class:`balpm.embed.Embedder`)."""

    embedding_model: str = field(default="default", metadata={
        "help": "embedding model: default (MiniLM), smollm2, a hub name or a local folder", "flags": ("--model",)})
    max_length: int = field(default=256, metadata={"help": "tokens per embedded text (left-truncated)"})
    embed_batch_size: int = field(default=32, metadata={"help": "texts per embedding forward pass"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda, mps, then cpu)"})

    def model_key(self) -> str:
        """What decides the embedding vectors (not the device or batch size): for cache keys."""
        return f"{self.embedding_model}|max_length={int(self.max_length)}"


@dataclass
class EnsembleConfig:
    """The reward-model ensemble (:class:`balpm.model.PreferenceEnsemble`; defaults are its own)."""

    n_members: int = field(default=5, metadata={"help": "ensemble members"})
    hidden: tuple[int, ...] = field(default=(64,), metadata={
        "help": "hidden widths of each reward head, comma separated (the model's default; paper: 2048,256)",
        "type": int_tuple})
    activation: str = field(default="tanh", metadata={"help": "hidden activation: tanh, relu, gelu, silu, sigmoid"})
    init_std: float = field(default=0.01, metadata={
        "help": "standard deviation of the normal initial weights (biases start at 0)"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the heads"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    train_batch_size: int = field(default=32, metadata={"help": "training minibatch size (pairs)"})
    max_epochs: int = field(default=15, metadata={"help": "epoch cap of one ensemble fit"})
    patience: int = field(default=3, metadata={"help": "early-stopping patience (epochs)"})
    bootstrap: bool = field(default=True, metadata={
        "help": "train each member on a bootstrap resample of its labels (the model's default since issue 12: "
                "the all-label curve no longer falls on qa-feedback; benchmarks/README.md, 'Model study')"})

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)  # JSON gives lists: one canonical form

    def model_params(self, device: str | None = None) -> dict[str, Any]:
        """Constructor parameters of :class:`balpm.model.PreferenceEnsemble` (the learner sets ``seed``)."""
        return {
            "n_members": int(self.n_members), "hidden": tuple(int(h) for h in self.hidden),
            "activation": str(self.activation), "init_std": float(self.init_std), "lr": float(self.lr),
            "weight_decay": float(self.weight_decay), "batch_size": int(self.train_batch_size),
            "max_epochs": int(self.max_epochs), "patience": int(self.patience), "bootstrap": bool(self.bootstrap),
            "device": device,
        }

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EnsembleConfig:
        """The ensemble settings of preset ``name`` (:data:`PRESETS`), ``overrides`` winning."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in preset_settings(name).items() if k in names} | overrides)

    @classmethod
    def from_model_params(cls, params: dict[str, Any]) -> EnsembleConfig:
        """From a ``PreferenceEnsemble`` parameter dict (older session files kept one); ValueError on an unknown key."""
        names = {"n_members", "hidden", "activation", "init_std", "lr", "weight_decay", "max_epochs", "patience",
                 "bootstrap"}
        kw: dict[str, Any] = dict(SAVED_BEFORE[cls])
        for key, value in params.items():
            if key == "batch_size":
                kw["train_batch_size"] = value
            elif key in names:
                kw[key] = value
            elif key not in ("device", "seed"):  # the device is the embedding's, the seed the run's
                raise ValueError(f"unknown ensemble setting {key!r} (known: {sorted(names | {'batch_size'})})")
        return cls(**kw)


@dataclass
class AcquisitionConfig:
    """The acquisition policy by name and its parameters (``beta``, ``k``, ``temperature``)."""

    policy: str = field(default="bal-pm", metadata={
        "help": "acquisition policy: bal-pm, random, bald, softmax-bald, power-bald, softrank-bald, entropy"})
    params: dict[str, Any] = field(default_factory=lambda: {"beta": 0.01, "k": 13})

    def policy_params(self) -> dict[str, Any]:
        """The parameters the policy declares (:attr:`balpm.acquisition.Policy.PARAMS`), checked; others given are
        kept in the config but not passed on."""
        from balpm.acquisition import policy_params_from

        return policy_params_from(self.policy, self.params)

    @classmethod
    def preset(cls, name: str, policy: str = "bal-pm", **overrides: Any) -> AcquisitionConfig:
        """Policy ``policy`` with the policy parameters of preset ``name`` (:data:`PRESETS`), ``overrides`` winning."""
        params = {k: v for k, v in preset_settings(name).items() if k in _POLICY_PRESET_KEYS}
        return cls(policy=policy, params=params | overrides)

    @property
    def knn_k(self) -> int:
        """Neighbour rank of the kNN graph (``k``, 13 when not given)."""
        return int(self.params.get("k", 13))


#: Named configurations, by flat setting name (:meth:`SessionConfig.with_settings` names, and ``beta``, ``k``, ``d``
#: for the policy's parameters). ``paper``: Melo et al. (2024)'s BAL-PM setting: (2048, 256) tanh heads, weights
#: N(0, 0.01²), AdamW lr 3e-5, batch 32, patience 3, 5 members; β = 0.01, k = 13 and d = 1 (the divisor of
#: ψ(n + 1) in the entropy estimate Ĥ, :func:`balpm.acquisition.entropy_term`). The paper trains to early stopping
#: with no epoch cap; ``max_epochs`` 100 stands in for "no cap" (lr 3e-5 needs ~30 epochs, the default cap of 15
#: would stop it near chance).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"n_members": 5, "hidden": (2048, 256), "activation": "tanh", "init_std": 0.01, "lr": 3e-5,
              "weight_decay": 0.0, "train_batch_size": 32, "max_epochs": 100, "patience": 3, "bootstrap": False,
              "beta": 0.01, "k": 13, "d": 1.0},
}

#: Settings of a preset that are the policy's parameters (they go into ``AcquisitionConfig.params``).
_POLICY_PRESET_KEYS = ("beta", "k", "d")


def preset_settings(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s settings (:data:`PRESETS`); ValueError naming the known presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])


@dataclass
class EmbedCommandConfig:
    """``balpm embed``'s own options: which pairs it embeds. Not :class:`PoolConfig`'s ``max_pairs`` and
    ``data_seed``: a run samples 2000 pairs by default and splits them, ``embed`` takes the whole pool unless told."""

    max_pairs: int | None = field(default=None, metadata={"help": "embed a sample of N pairs (by group)",
                                                          "metavar": "N"})
    seed: int = field(default=0, metadata={"help": "seed of the A/B coin and of --max-pairs sampling"})


@dataclass
class CheckCommandConfig:
    """``balpm check``'s own options (:func:`balpm.check.learnability_check`'s labels, budget, folds and seed)."""

    labels: int = field(default=256, metadata={"help": "simulation: N random labelled pairs", "metavar": "N"})
    budget: int | None = field(default=None, metadata={
        "help": "total labels the campaign would buy, for the forecast (default: the pool's size)", "metavar": "B"})
    seed: int | None = field(default=None, metadata={
        "help": "seeds the labels drawn, folds, model and bootstrap (default 0; a session's own seed)"})
    folds: int = field(default=5, metadata={"help": "K of the K-fold split by prompt group"})


#: Settings added after config files were first written, with the value that a file lacking them meant: an
#: ensemble saved before ``bootstrap`` existed trained plain members, so it must not read back as the new default
#: (a finished run would pass for one of today's configuration).
SAVED_BEFORE: dict[type, dict[str, Any]] = {EnsembleConfig: {"bootstrap": False}}


def concern_from_dict(concern: type, d: dict[str, Any]) -> Any:
    """The config ``concern`` from a saved dict: unknown keys ignored, missing later settings as
    :data:`SAVED_BEFORE` says, the rest the defaults."""
    known = {f.name for f in dataclasses.fields(concern)}
    return concern(**(SAVED_BEFORE.get(concern, {}) | {k: v for k, v in d.items() if k in known}))


#: The nested concern of each config field name (the configs that nest them use these names).
CONCERNS: dict[str, type] = {"pool": PoolConfig, "embedding": EmbeddingConfig, "ensemble": EnsembleConfig,
                             "acquisition": AcquisitionConfig}


@dataclass
class SessionConfig:
    """Everything that defines a session; saved as ``session.json``. One nested config per concern
    (:mod:`balpm.config`), and the session's own fields.

    ``pool.dataset`` is a built-in name (``hh-rlhf:harmless-base``), an absolute path, or a path relative to the
    session folder (uploads). ``pool.max_pairs`` samples whole prompt groups (None = all). In simulation mode the
    pool is restricted to labelled pairs and ``pool.test_fraction`` of it (whole groups) is held out for the test
    curve. Files written before the nesting (flat fields: ``pool`` a str, ``pool_seed``, ``model``,
    ``model_params``, ``policy_params``) still load through :meth:`from_dict`.
    """

    pool: PoolConfig = field(default_factory=lambda: PoolConfig(max_pairs=500))
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    mode: str = "human"
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    batch_size: int = 16
    seed: int = 0
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    initial: int = 16
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ensemble"]["hidden"] = list(d["ensemble"]["hidden"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionConfig:
        """From :meth:`to_dict` or an older flat file; ignores unknown keys, so an older balpm can read a newer
        file's known fields."""
        if not isinstance(d.get("pool"), dict):  # the flat layout of session.json before issue 13
            flat = {_LEGACY_SETTINGS.get(k, k): v for k, v in d.items()}
            ensemble = {"n_members": flat.pop("n_members", 5), **(flat.pop("model_params", None) or {})}
            base = cls.from_settings(**{k: v for k, v in flat.items() if k in _setting_names()})
            return dataclasses.replace(base, ensemble=EnsembleConfig.from_model_params(ensemble))
        kw: dict[str, Any] = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        for name, concern in CONCERNS.items():
            kw[name] = concern_from_dict(concern, d.get(name) or {})
        return cls(**kw)

    @classmethod
    def from_settings(cls, **settings: Any) -> SessionConfig:
        """A config from flat setting names (:meth:`with_settings`), the defaults for the rest."""
        return cls().with_settings(**settings)

    def with_settings(self, **settings: Any) -> SessionConfig:
        """A copy with settings changed, by flat name: a field of the session (``mode``, ``batch_size`` ...), a
        field of one of its concerns (``dataset``, ``embedding_model``, ``policy``, ``n_members`` ...; each name
        belongs to one), ``policy_params`` for the policy's parameters, or a whole concern (``ensemble=...``).
        TypeError names unknown settings."""
        unknown = set(settings) - _setting_names()
        if unknown:
            raise TypeError(f"unknown session settings: {sorted(unknown)}")
        for name, concern in CONCERNS.items():
            if name in settings and not isinstance(settings[name], concern):
                got = type(settings[name]).__name__
                raise TypeError(f"session setting {name!r} is a {concern.__name__}, not {got}")
        top = {k: v for k, v in settings.items() if k in {f.name for f in dataclasses.fields(self)}}
        new = dataclasses.replace(self, **top)
        for name, concern in CONCERNS.items():
            fields = {f.name for f in dataclasses.fields(concern)}
            changes = {k: v for k, v in settings.items() if k in fields and k not in top}
            if name == "acquisition" and "policy_params" in settings:
                changes["params"] = dict(settings["policy_params"])
            if changes:
                setattr(new, name, dataclasses.replace(getattr(new, name), **changes))
        return new

    def settings(self) -> dict[str, Any]:
        """Every setting by its flat name (what :meth:`with_settings` takes): for forms that compare and update."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in CONCERNS}
        for name in CONCERNS:
            concern = getattr(self, name)
            out.update({f.name: getattr(concern, f.name) for f in dataclasses.fields(concern) if f.name != "params"})
        out["policy_params"] = self.acquisition.params
        return out

    def ensemble_params(self) -> dict[str, Any]:
        """Constructor parameters of :class:`balpm.model.PreferenceEnsemble` (the learner sets ``seed``)."""
        return self.ensemble.model_params(self.embedding.device)

    def model_key(self) -> str:
        """What decides the embedding vectors (not the device or batch size): for cache keys."""
        return self.embedding.model_key()


#: Names in session.json files written before issue 13, and their setting names now.
_LEGACY_SETTINGS = {"pool": "dataset", "pool_seed": "data_seed", "model": "embedding_model"}


def _setting_names() -> set[str]:
    """Every flat setting name :meth:`SessionConfig.with_settings` accepts."""
    names = {f.name for f in dataclasses.fields(SessionConfig)} | {"policy_params"}
    for concern in CONCERNS.values():
        names |= {f.name for f in dataclasses.fields(concern)}
    return names - {"params"}
