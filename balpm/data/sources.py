"""Where pools come from: :func:`load_pool` (a path, a built-in name, ``hf:NAME``) and the built-in datasets.

A built-in name reads the full split from :func:`data_dir` when it is there, else the embedded sample
(:func:`sample_dir`), and says which in ``pool.report.origin``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from balpm.data.columns import parse_columns
from balpm.data.formats import _DIR_EXTENSIONS, _hf_records, _is_hf_disk, _records_from_file
from balpm.data.pool import LoadReport, PoolFormatError, PreferencePool
from balpm.data.records import _Builder, _consume

HH_SPLITS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")

#: Prefix of a built-in name that always reads the embedded sample (``sample:qa-feedback``).
SAMPLE_PREFIX = "sample:"
#: Built-in names that have an embedded sample (``balpm/datasets/``) -> pairs of the full split, for the summary.
SAMPLE_OF: dict[str, int] = {"hh-rlhf:harmless-base": 2303, "qa-feedback": 2616}

#: Built-in dataset names -> description. ``hh-rlhf:<split>`` works for every split in :data:`HH_SPLITS`.
#: A name with a sample reads the full split from :func:`data_dir` when it is there, else the sample.
BUILTIN_DATASETS: dict[str, str] = {
    "hh-rlhf": "Anthropic HH-RLHF test splits (all four, concatenated), data_dir()/hh-rlhf/*.jsonl.gz",
    **{f"hh-rlhf:{s}": f"Anthropic HH-RLHF {s} test split"
       + (" (else the embedded sample)" if f"hh-rlhf:{s}" in SAMPLE_OF else "") for s in HH_SPLITS},
    "qa-feedback": "AllenAI QA-Feedback dev set, data_dir()/qa-feedback/dev_feedback.json (else the embedded sample)",
    **{f"{SAMPLE_PREFIX}{k}": f"embedded sample of {k} (ships with balpm)" for k in SAMPLE_OF},
}


def data_dir() -> Path | None:
    """The folder holding the full built-in datasets: ``$BALPM_DATA_DIR``, else ``shared/data`` beside the repository.

    Returns None when neither is set or exists, or when ``BALPM_DATA_DIR=none``: the explicit way to hide a data
    folder and use the embedded sample (a fresh clone, the tests' sample runs).
    """
    env = os.environ.get("BALPM_DATA_DIR", "").strip()
    if env.lower() == "none":
        return None
    if env:
        return Path(env).expanduser()
    import balpm

    beside = Path(balpm.__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


def sample_dir() -> Path:
    """The embedded sample's folder (package data, laid out like :func:`data_dir`; see ``balpm/datasets/README.md``)."""
    from balpm.datasets import SAMPLE_DIR

    return SAMPLE_DIR


def _split_files(name: str, root: Path) -> list[tuple[str, Path]]:
    """(source, file) pairs of built-in ``name`` in a folder laid out like the data folder; [] when any is missing."""
    base, _, split = name.partition(":")
    if base == "qa-feedback":
        names = ("dev_feedback.json", "dev_feedback.json.gz", "dev_feedback-sample.json.gz")
        found = [f for f in (root / "qa-feedback" / n for n in names) if f.is_file()]
        return [("qa-feedback", found[0])] if found else []
    out = []
    for s in (split,) if split else HH_SPLITS:
        files = sorted((root / "hh-rlhf").glob(f"{s}-*.jsonl.gz")) + sorted((root / "hh-rlhf" / s).glob("*.jsonl.gz"))
        if not files:
            return []
        out.extend((f"hh-rlhf:{s}", f) for f in files)
    return out


def full_data_present(name: str) -> bool:
    """Whether :func:`data_dir` holds the full files of built-in ``name`` (else it reads the sample, or fails)."""
    root = data_dir()
    return root is not None and root.is_dir() and bool(_split_files(name, root))


def _builtin_files(name: str) -> tuple[list[tuple[str, Path]], Path | None]:
    """(source, file) pairs for a built-in name and the data folder they came from (None: the embedded sample).

    The full split from :func:`data_dir` when it is there, else the embedded sample when the name has one; a
    ``sample:`` name always reads the sample. Anything else is a PoolFormatError that says what to set.
    """
    samples = ", ".join(SAMPLE_PREFIX + k for k in SAMPLE_OF)
    base = name[len(SAMPLE_PREFIX):] if name.startswith(SAMPLE_PREFIX) else name
    if base.startswith("hh-rlhf:") and base.partition(":")[2] not in HH_SPLITS:
        raise PoolFormatError(name, None, None,
                              f"unknown hh-rlhf split {base.partition(':')[2]!r}; known: {', '.join(HH_SPLITS)}")
    if name.startswith(SAMPLE_PREFIX):
        if base not in SAMPLE_OF:
            raise PoolFormatError(name, None, None, f"no embedded sample of {base!r}; samples: {samples}")
        return _split_files(base, sample_dir()), None
    root = data_dir()
    if root is not None and not root.is_dir():
        raise PoolFormatError(name, None, None, f"data folder {root} does not exist: set BALPM_DATA_DIR to the data "
                              "folder, or BALPM_DATA_DIR=none to use the embedded sample")
    files = _split_files(base, root) if root is not None else []
    if files:
        return files, root
    if base in SAMPLE_OF:
        return _split_files(base, sample_dir()), None
    where = f"not in {root}" if root is not None else "no data folder found"
    raise PoolFormatError(name, None, None, f"no embedded sample of this dataset and its full files are missing "
                          f"({where}): set BALPM_DATA_DIR to the folder holding hh-rlhf/ and qa-feedback/; "
                          f"the embedded samples work anywhere: {samples}")


def _is_builtin(source: str) -> bool:
    name = source[len(SAMPLE_PREFIX):] if source.startswith(SAMPLE_PREFIX) else source
    return name in BUILTIN_DATASETS or name.startswith("hh-rlhf:")


_DIGESTS: dict[tuple[str, int, int], str] = {}
"""sha256 of a built-in's files by (path, size, mtime): a session's pool key is asked on every page draw."""


def source_fingerprint(source: str | os.PathLike) -> str:
    """A cheap key that changes whenever the pairs a source gives could: for an existing file or folder, its files'
    sizes and mtimes; for a built-in name, which files it reads now (the full split of :func:`data_dir` or the
    embedded sample) and a digest of their bytes; ``"builtin"`` for anything else (``hf:`` names).

    Why the files of a built-in: one name gives other pairs with ``BALPM_DATA_DIR`` set or ``none``.
    """
    from balpm.safeio import sha256_file

    path = Path(source).expanduser()
    if path.is_file():
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns};".encode())
        return h.hexdigest()[:16]
    if not _is_builtin(str(source)):
        return "builtin"
    try:
        files, root = _builtin_files(str(source))
    except PoolFormatError as e:  # no data folder: loading fails and says why; the key only has to differ
        return f"builtin:missing:{e}"
    for name, f in files:
        st = f.stat()
        key = (str(f), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = sha256_file(f)
        h.update(f"{name}:{f.name}:{_DIGESTS[key]};".encode())
    return f"builtin:{'sample' if root is None else 'full'}:{h.hexdigest()[:16]}"


def _read_path(b: _Builder, path: Path, fmt: str | None, seed: int, schemas: set[str]) -> None:
    """Read an existing file, ``save_to_disk`` folder or folder of pool files into ``b``."""
    name = path.name
    if _is_hf_disk(path):
        try:
            import datasets
        except ImportError:
            raise PoolFormatError(path, None, None,
                                  "reading a save_to_disk folder needs `pip install datasets`") from None
        for s, recs in _hf_records(datasets.load_from_disk(str(path)), str(path), name):
            _consume(b, recs, s, seed, schemas)
    elif path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_DIR_EXTENSIONS)
        )
        if not files:
            raise PoolFormatError(path, None, None, "folder holds no pool files (.jsonl[.gz], .json, .csv, .parquet)")
        for f in files:
            _consume(b, _records_from_file(f, fmt), str(f.relative_to(path)), seed, schemas)
    else:
        _consume(b, _records_from_file(path, fmt), name, seed, schemas)


def _read_hf(b: _Builder, src: str, seed: int, schemas: set[str]) -> None:
    """Read ``hf:NAME[:split]`` through ``datasets.load_dataset`` (needs the network) into ``b``."""
    spec = src[3:]
    ds_name, _, split = spec.partition(":")
    if not ds_name:
        raise PoolFormatError(src, None, None, "expected hf:NAME[:split]")
    try:
        import datasets
    except ImportError:
        raise PoolFormatError(src, None, None, "hf: sources need `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(ds_name, split=split or None)
    except Exception as e:  # network, unknown name, unknown split
        raise PoolFormatError(src, None, None, f"datasets.load_dataset failed: {e}") from None
    for s, recs in _hf_records(ds, src, src):
        _consume(b, recs, s, seed, schemas)


def read_fields(source: str | os.PathLike, fmt: str | None = None) -> list[str]:
    """The field names of a file's first record (a folder: its first pool file's), for a column-mapping form.

    Why: when the layout is not recognised, the Pool page asks the user to map these names
    (:func:`balpm.data.columns.guess_columns` pre-fills the form). Errors are located PoolFormatErrors.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise PoolFormatError(source, None, None, "no such file")
    if _is_hf_disk(path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        names = ds.column_names
        return list(next(iter(names.values())) if isinstance(names, dict) else names)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_DIR_EXTENSIONS))
        if not files:
            raise PoolFormatError(path, None, None, "folder holds no pool files (.jsonl[.gz], .json, .csv, .parquet)")
        path = files[0]
    for _loc, rec in _records_from_file(path, fmt):
        return [str(k) for k in rec]
    raise PoolFormatError(path, None, None, "no records")


def load_pool(
    source: str | os.PathLike, *, seed: int = 0, fmt: str | None = None, strict: bool = False,
    columns: str | Mapping[str, str] | None = None,
) -> PreferencePool:
    """Read a preference pool from a file, folder, built-in name or ``hf:NAME[:split]``.

    Parameters
    ----------
    source : str or path-like
        A file (JSONL/JSON/CSV/TSV/Parquet, gzip allowed), a ``save_to_disk`` folder, a folder of such files, a
        built-in name (:data:`BUILTIN_DATASETS`) or ``hf:NAME[:split]``. An existing path wins over a name.
    seed : int
        Seed of the coin that decides which completion of a chosen/rejected pair is shown as A.
    fmt : {None, "jsonl", "json", "csv", "tsv", "parquet"}
        The container format when the file extension does not tell; the record schema is always detected.
    strict : bool
        Refuse the source at the first record the format's rules would drop (a located PoolFormatError naming
        the reason) instead of dropping and counting it; see "Errors and drops" in the module docstring.
    columns : str or mapping, optional
        Column mapping for files whose columns have other names: ``"prompt=question,chosen=answer_good,
        rejected=answer_bad"`` or ``{"prompt": "question", ...}`` (targets: :data:`balpm.data.columns.TARGETS`).
        Each record is renamed before its schema is detected; a mapped column a record lacks is a located error.

    Returns
    -------
    PreferencePool

    Raises
    ------
    PoolFormatError
        For anything the user must fix, located to file, line and field.
    """
    src = str(source)
    path = Path(src).expanduser()
    try:
        mapping = parse_columns(columns)
    except ValueError as e:
        raise PoolFormatError(src, None, None, str(e)) from None
    b = _Builder(strict, mapping)
    schemas: set[str] = set()
    origin = ""
    if path.exists():
        name = path.name
        _read_path(b, path, fmt, seed, schemas)
    elif src.startswith("hf:"):
        name = src
        _read_hf(b, src, seed, schemas)
    elif _is_builtin(src):
        name = src
        files, root = _builtin_files(src)
        for s, f in files:
            _consume(b, _records_from_file(f, None), s, seed, schemas)
        full = SAMPLE_OF.get(src[len(SAMPLE_PREFIX):] if src.startswith(SAMPLE_PREFIX) else src)
        origin = (f"embedded sample, {len(b.rows):,} of {full:,} pairs" if root is None
                  else f"full split, data folder {root}")
    else:
        known = ", ".join(k for k in BUILTIN_DATASETS if not k.startswith("hh-rlhf:"))
        raise PoolFormatError(src, None, None,
                              f"no such file or built-in dataset (built-ins: {known}, hh-rlhf:<split>)")
    if not b.rows:
        raise PoolFormatError(src, None, None,
                              "no usable pairs" + (f" (dropped: {dict(b.dropped)})" if b.dropped else ""))
    pairs = b.frame()
    report = LoadReport(path=src, kept=len(pairs), dropped=dict(b.dropped), first_dropped=dict(b.first_dropped),
                        format="+".join(sorted(schemas)),
                        origin=origin)
    return PreferencePool(pairs, name=name, report=report)
