"""The ``balpm`` command line: ``balpm validate | embed | check | run | compare | backup | labelstudio``.

Each sub-command is a thin wrapper over the library. A user's mistake (a bad file, an unknown dataset name) is
printed as one located line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any


def cmd_validate(args: argparse.Namespace) -> int:
    """Load a pool, print its summary; a bad file gives one located line on stderr and exit status 2."""
    import json

    from balpm.data import PoolFormatError, format_summary, load_pool, summarize

    try:
        pool = load_pool(args.source, seed=args.seed, fmt=getattr(args, "format", None), strict=args.strict,
                         columns=args.columns)
    except PoolFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable file or folder outside what the readers locate
        print(f"error: {args.source}: {e}", file=sys.stderr)
        return 2
    summary = summarize(pool)
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed a pool (prompt, prompt+A, prompt+B) through the cache; optionally write ``DIR/embeddings.npz``."""
    import time

    from tqdm.auto import tqdm

    from balpm import data
    from balpm.embed import EmbeddingModelError, Embedder, embed_pool

    try:
        pool = data.load_pool(args.source, seed=args.seed, strict=args.strict, columns=args.columns)
    except (ValueError, OSError) as e:  # PoolFormatError is a ValueError
        print(f"balpm embed: {e}", file=sys.stderr)
        return 2
    if args.max_pairs is not None and len(pool) > args.max_pairs:
        pool = pool.sample_groups(args.max_pairs, args.seed)
    if args.from_file:
        return _embed_from_file(args, pool)
    if getattr(args, "engine", "local") == "ray":
        return _embed_ray(args, pool)
    t0 = time.perf_counter()
    try:
        embedder = Embedder(
            args.embedding_model, device=args.device, batch_size=args.embed_batch_size, max_length=args.max_length,
            pooling=args.pooling, dtype=args.dtype, truncation_side=args.truncation_side,
        )
    except (EmbeddingModelError, ValueError) as e:
        print(f"balpm embed: {e}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - t0
    print(f"{embedder!r} loaded in {load_s:.1f}s; model id {embedder.model_id}", file=sys.stderr)
    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:  # created on the first call, once the total (unique texts) is known
            bars.append(tqdm(total=total, unit="text", desc="embedding", disable=args.quiet))
        bars[0].n = done
        bars[0].refresh()

    try:
        emb = embed_pool(pool, embedder, cache_dir=False if args.no_cache else args.cache_dir, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    return _report_embedded(emb, args.out)


def _report_embedded(emb, out: str | None, where: str = "") -> int:
    """The one summary line of ``balpm embed`` (local or Ray: ``where`` says which), then ``--out``'s file."""
    from pathlib import Path

    st = emb.stats
    rate = f"{st['computed'] / st['seconds']:.1f} texts/s" if st["computed"] and st["seconds"] > 0 else "all cached"
    print(
        f"{len(emb)} pairs -> {st['texts']} unique texts: {st['cached']} cached, {st['computed']} computed "
        f"in {st['seconds']:.1f}s{where} ({rate}); dim {emb.dim}"
    )
    if out:
        print(f"wrote {emb.save(Path(out) / 'embeddings.npz')}")
    return 0


def _embed_from_file(args: argparse.Namespace, pool) -> int:
    """``balpm embed POOL --from-file F``: your own vectors (:mod:`balpm.vectors`), checked, saved with ``--out``."""
    from pathlib import Path

    from balpm.embed import PoolEmbeddings

    try:
        emb = PoolEmbeddings.from_file(args.from_file, pool)
    except ValueError as e:  # VectorFileError: located
        print(f"balpm embed: {e}", file=sys.stderr)
        return 2
    print(f"{len(emb)} pairs: vectors read from {args.from_file} (dim {emb.dim}); model id {emb.model_id}")
    if args.out:
        print(f"wrote {emb.save(Path(args.out) / 'embeddings.npz')}")
    return 0


def _embed_ray(args: argparse.Namespace, pool) -> int:
    """``balpm embed --engine ray``: each Ray worker builds its own Embedder; same cache, same summary line."""
    from balpm.distributed import embed_pool_ray, ray_available
    from balpm.embed import EmbeddingModelError

    if not ray_available():
        print("balpm embed: --engine ray needs Ray: pip install -r requirements-ray.txt", file=sys.stderr)
        return 2
    kwargs = {"model": args.embedding_model, "batch_size": args.embed_batch_size, "max_length": args.max_length,
              "pooling": args.pooling, "dtype": args.dtype, "truncation_side": args.truncation_side}
    if args.device:
        kwargs["device"] = args.device
    try:
        emb = embed_pool_ray(pool, kwargs, cache_dir=False if args.no_cache else args.cache_dir,
                             address=args.address, num_workers=args.workers)
    except (EmbeddingModelError, ValueError) as e:
        print(f"balpm embed: {e}", file=sys.stderr)
        return 2
    return _report_embedded(emb, args.out, f" on Ray, {emb.stats['workers']} workers")


def cmd_check(args: argparse.Namespace) -> int:
    """Learnability check (:mod:`balpm.check`): N random labels of the pool's own, or a session's labels so far."""
    import json

    from balpm.check import check_session, embed_labelled, learnability_check, random_labelled_ids
    from balpm.embed import EmbeddingModelError

    kw = {"budget": args.budget, "folds": args.folds}
    try:
        if args.session:
            session = _open_session(args.session)
            if args.seed is not None:
                kw["seed"] = args.seed
            report = check_session(session, cache_dir=args.cache_dir, **kw)
        else:
            if not args.source:
                print("balpm check: give a POOL (simulation) or --session NAME", file=sys.stderr)
                return 2
            from balpm.data import load_pool

            seed = 0 if args.seed is None else args.seed
            pool = load_pool(args.source, seed=seed, strict=args.strict, columns=args.columns)
            ids = random_labelled_ids(pool, args.labels, seed)
            emb = embed_labelled(pool, ids, args.embedding_model, cache_dir=args.cache_dir, max_length=args.max_length)
            report = learnability_check(pool, emb, ids, seed=seed, **kw)
    except (EmbeddingModelError, ValueError, OSError, KeyError) as e:  # bad file, too few labels, no session
        print(f"balpm check: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2, default=float) if args.json else report.summary())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Simulate one active-learning run and write its run folder (config.json, metrics.csv, acquired.csv)."""
    from tqdm.auto import tqdm

    from balpm.experiment import run_experiment

    config = config_from_namespace(args)
    quiet = bool(getattr(args, "quiet", False))
    rounds = tqdm(total=config.rounds + 1, unit="round", desc=f"{config.acquisition.policy} seed {config.seed}",
                  disable=quiet)
    embedding = tqdm(total=0, unit="text", desc="embedding", disable=quiet, leave=False)

    def embed_progress(done: int, total: int) -> None:
        embedding.total = total
        embedding.n = done
        embedding.refresh()

    def on_round(r: int, rows) -> None:
        test = rows[rows["split"] == "test"]
        if len(test):
            rounds.set_postfix(labels=int(test["n_labeled"].iloc[0]), ll=f"{test['log_likelihood'].iloc[0]:.4f}",
                               acc=f"{test['accuracy'].iloc[0]:.3f}")

    try:
        out = run_experiment(config, progress=lambda done, total: rounds.update(done - rounds.n), on_round=on_round,
                             embed_progress=embed_progress)
    except (ValueError, OSError, KeyError) as e:  # PoolFormatError, unknown dataset/policy/model: one line
        embedding.close()
        rounds.close()
        print(f"balpm run: {e}", file=sys.stderr)
        return 2
    embedding.close()
    rounds.close()
    print(out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare run folders: curves (HTML, PNG when kaleido works), labels_saved.csv and summary.md."""
    from balpm.experiment import write_report

    try:
        out = write_report(args.runs, args.out, png=not args.no_png)
    except (ValueError, OSError, KeyError) as e:
        print(f"balpm compare: {e}", file=sys.stderr)
        return 2
    print((out / "summary.md").read_text())
    print(out)
    return 0


def _open_session(ref: str):
    """The session ``ref`` names: a folder when it looks like a path (a separator, ``~``, ``.``), else a name under
    the sessions folder (:meth:`balpm.session.Session.open` tells the two apart by type)."""
    import os
    from pathlib import Path

    from balpm.session import Session

    is_folder = os.sep in ref or "/" in ref or ref.startswith("~") or ref in (".", "..")
    return Session.open(Path(ref) if is_folder else ref)


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up a session's label database (SQLite's online backup: safe while the app is labelling)."""
    from balpm.store import LabelStoreError

    try:
        session = _open_session(args.session)
        out = session.store.backup(args.out)
    except (LabelStoreError, OSError, ValueError) as e:  # damaged store, missing session, bad name, --out exists
        print(f"balpm backup: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def cmd_labelstudio(args: argparse.Namespace) -> int:
    """Label Studio: export the current batch as tasks (and the labelling config), or import its JSON export."""
    from balpm.labelstudio import export_tasks, import_export
    from balpm.store import LabelStoreError

    try:
        session = _open_session(args.session)
        if args.action == "export":
            n = export_tasks(session, args.out, config_out=args.config)
            print(f"{n} tasks written to {args.out}" + (f"; labelling config in {args.config}" if args.config else ""))
        else:
            print(import_export(session, args.export).summary())
    except (LabelStoreError, OSError, ValueError, KeyError) as e:  # bad file (located), no session, no batch
        print(f"balpm labelstudio: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a session's labels in one training or audit format (``balpm.exports.EXPORT_FORMATS``)."""
    from balpm.exports import write_export
    from balpm.store import LabelStoreError

    try:
        session = _open_session(args.session)
        n = write_export(session.store, session.load_pool(), args.format, args.out)
    except (LabelStoreError, OSError, ValueError, KeyError) as e:  # not conversational, folder exists, no session
        print(f"balpm export: {e}", file=sys.stderr)
        return 2
    print(f"{n} rows written to {args.out} ({args.format})")
    return 0


def add_export_args(p: argparse.ArgumentParser) -> None:
    from balpm.exports import EXPORT_FORMATS

    p.add_argument("session", help="session name (under $BALPM_SESSIONS_DIR) or a session folder path (with a '/')")
    p.add_argument("--format", default="trl", choices=list(EXPORT_FORMATS),
                   help="; ".join(f"{k}: {v[1]}" for k, v in EXPORT_FORMATS.items()) + " (default: trl)")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write (a folder for --format dataset)")


def add_labelstudio_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("export", help="the current batch's unlabelled pairs as Label Studio tasks (JSON)")
    ex.add_argument("session", help="session name (under $BALPM_SESSIONS_DIR) or a session folder path (with a '/')")
    ex.add_argument("--out", required=True, metavar="FILE", help="tasks file to import into Label Studio")
    ex.add_argument("--config", default=None, metavar="FILE",
                    help="also write the labelling config (XML) for the project's Labeling Interface")
    im = sub.add_parser("import", help="labels from Label Studio's JSON export of those tasks (idempotent)")
    im.add_argument("session", help="session name (under $BALPM_SESSIONS_DIR) or a session folder path (with a '/')")
    im.add_argument("export", help="Label Studio's JSON export (Export > JSON)")


# ------------------------------------------------------------------------------------------------ options
# Options are built from the config dataclasses (balpm.config, balpm.experiment.ExperimentConfig), like trl's
# HfArgumentParser: each setting is declared, with its help and default, once.
def _field_type(f: dataclasses.Field, hints: dict[str, Any]) -> Callable[[str], Any]:
    """argparse ``type`` of a config field (an optional field accepts 'none')."""
    if "type" in f.metadata:
        return f.metadata["type"]
    tp = hints[f.name]
    args = typing.get_args(tp)
    base = next((a for a in args if a is not type(None)), tp) if args else tp
    if base not in (int, float, str):
        base = str
    if type(None) in args:
        def parse(text: str, base: Callable[[str], Any] = base) -> Any:
            return None if text.strip().lower() in ("none", "") else base(text)
        return parse
    return base


def _with_default(text: str, shown: Any) -> str:
    """``text`` plus ``(default: shown)``, unless the text already says its default in words (said once) or there
    is none to say (``None``: the option is off unless given)."""
    return text if "(default" in text or shown is None else f"{text} (default: {shown})"


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, only: Sequence[str] | None = None,
                            flags: dict[str, Sequence[str]] | None = None) -> None:
    """One ``--option`` per field of the config dataclass ``cls`` (``only``: these fields), with its help and default.

    A field whose type is a config of :data:`balpm.config.CONCERNS` adds that config's options. ``flags`` gives a
    field extra option strings on this command (``embed``'s ``--batch-size``); the field's own ``flags``
    metadata names the ones every command keeps (``--model`` for ``--embedding-model``).
    """
    from balpm.config import CONCERNS

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        if hints[f.name] in CONCERNS.values():
            add_dataclass_arguments(parser, hints[f.name], only=only, flags=flags)
            if f.name == "acquisition":
                _add_policy_param_arguments(parser)
            continue
        names = ["--" + f.name.replace("_", "-"), *f.metadata.get("flags", ()), *(flags or {}).get(f.name, ())]
        if hints[f.name] is bool:  # a flag: off unless given; --no-NAME too when it is on by default
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            parser.add_argument(*names, dest=f.name, action=action, default=f.default,
                                help=f.metadata.get("help", ""))
            continue
        if "help" not in f.metadata:  # not a command-line setting (a dict of policy parameters)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(*names, dest=f.name, type=_field_type(f, hints), default=default,
                            metavar=f.metadata.get("metavar", f.name.upper()),
                            help=_with_default(f.metadata.get("help", ""), shown))


def _policy_param_options() -> list[Any]:
    """The policy parameter options: every parameter a policy declares (``Policy.PARAMS``), advanced ones aside."""
    from balpm.acquisition import all_policy_parameters

    return all_policy_parameters()


def _add_policy_param_arguments(parser: argparse.ArgumentParser) -> None:
    for p in _policy_param_options():
        parser.add_argument("--" + p.name, dest=p.name, type=_param_type(p) if p.words else p.type,
                            default=p.default, metavar=p.name.upper(), help=_with_default(p.help, p.default))


def _param_type(p: Any) -> Callable[[str], Any]:
    """argparse ``type`` of a policy parameter that also takes words (``--beta auto``): the word or a number."""
    def parse(text: str) -> Any:
        try:
            return p.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number or {' or '.join(map(repr, p.words))}, got {text!r}") from None
    return parse


def config_from_namespace(ns: argparse.Namespace, cls: type | None = None) -> Any:
    """The config ``cls`` (default :class:`balpm.experiment.ExperimentConfig`) from parsed options, nested
    configs included; the policy parameter options go into ``acquisition.params``."""
    from balpm.config import CONCERNS, AcquisitionConfig

    if cls is None:
        from balpm.experiment import ExperimentConfig

        cls = ExperimentConfig
    hints = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    from balpm.acquisition import all_policy_parameters

    for f in dataclasses.fields(cls):
        if hints[f.name] is AcquisitionConfig:  # advanced parameters too, when a preset set them (``d``)
            params = {p.name: getattr(ns, p.name) for p in all_policy_parameters(advanced=True) if hasattr(ns, p.name)}
            kw[f.name] = AcquisitionConfig(policy=ns.policy, params=params)
        elif hints[f.name] in CONCERNS.values():
            kw[f.name] = config_from_namespace(ns, hints[f.name])
        elif hasattr(ns, f.name):
            kw[f.name] = getattr(ns, f.name)
    return cls(**kw)


def add_backup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", help="session name (under $BALPM_SESSIONS_DIR) or a session folder path (with a '/')")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write (never overwritten); default SESSION/backups/labels-<UTC time>-manual.sqlite")


def add_validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="pool file (JSONL/JSON/CSV/Parquet), HF save_to_disk folder, or built-in name")
    p.add_argument("--seed", type=int, default=0, help="seed of the coin that decides which completion is A")
    p.add_argument(
        "--format", choices=["jsonl", "json", "csv", "tsv", "parquet"], default=None,
        help="file format when the extension does not tell (the record layout is always detected)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_strict_arg(p)


def add_strict_arg(p: argparse.ArgumentParser) -> None:
    """``--strict`` on every command that reads a pool (from :class:`balpm.config.PoolConfig`)."""
    from balpm.config import PoolConfig

    add_dataclass_arguments(p, PoolConfig, only=("strict",))
    add_columns_arg(p)


def add_columns_arg(p: argparse.ArgumentParser) -> None:
    """``--columns`` on every command that reads a pool: map a file's own column names (:mod:`balpm.data.columns`;
    declared once, as :attr:`balpm.config.PoolConfig.columns`, which also gives ``balpm run`` its option)."""
    from balpm.config import PoolConfig

    add_dataclass_arguments(p, PoolConfig, only=("columns",))


def add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="pool file or built-in name")
    from balpm.config import EmbeddingConfig

    add_dataclass_arguments(p, EmbeddingConfig, flags={"embed_batch_size": ("--batch-size",)})
    p.add_argument("--pooling", choices=["mean", "last", "cls"], default=None,
                   help="default: mean for encoders, last token for decoders")
    p.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 (default: half on GPU, fp32 on CPU)")
    p.add_argument("--truncation-side", choices=["left", "right"], default="left",
                   help="left keeps the end of long dialogues (default)")
    p.add_argument("--out", default=None, metavar="DIR", help="write DIR/embeddings.npz")
    p.add_argument("--from-file", default=None, metavar="FILE",
                   help="your own vectors instead of a model: Parquet (id, prompt, a, b float lists), .npz (ids, "
                        "prompt, a, b) or a folder of .npy; layout in the README")
    from balpm.config import EmbedCommandConfig

    add_dataclass_arguments(p, EmbedCommandConfig)
    p.add_argument("--cache-dir", default=None, help="embedding cache (default: $BALPM_CACHE_DIR or ~/.cache/balpm)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (this process) or ray (Embedder replicas on a Ray cluster; docs/scaling.md)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: start a local one")
    p.add_argument("--workers", type=int, default=2, help="Ray Embedder replicas (one GPU each when there are GPUs)")
    add_strict_arg(p)


def add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default=None,
                   help="pool file or built-in name (simulation: its own labels answer); omit with --session")
    p.add_argument("--session", default=None, help="check the labels a session has so far (name or folder)")
    from balpm.config import CheckCommandConfig, EmbeddingConfig

    add_dataclass_arguments(p, CheckCommandConfig)
    add_dataclass_arguments(p, EmbeddingConfig, only=("embedding_model", "max_length"))  # simulation only
    p.add_argument("--cache-dir", default=None, help="embedding cache (default: $BALPM_CACHE_DIR or ~/.cache/balpm)")
    p.add_argument("--json", action="store_true", help="print the report's numbers as JSON")
    add_strict_arg(p)


def add_run_args(p: argparse.ArgumentParser) -> None:
    from balpm.experiment import ExperimentConfig

    add_dataclass_arguments(p, ExperimentConfig)
    add_preset_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_preset_arg(p: argparse.ArgumentParser) -> None:
    """``--preset NAME`` (:data:`balpm.config.PRESETS`): its settings replace the defaults; :func:`main` parses the
    command line a second time with them, so an option given beside ``--preset`` still wins."""
    from balpm.config import PRESETS

    shown = "; ".join(f"{name}: " + ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                             for k, v in values.items()) for name, values in PRESETS.items())
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help=f"named configuration of the model and policy; options given beside it override it ({shown})")


def add_compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders written by `balpm run`")
    p.add_argument("--out", required=True, help="report folder to write (created if missing)")
    p.add_argument("--no-png", action="store_true", help="skip PNG export (HTML figures only)")


COMMANDS = {
    "validate": (add_validate_args, cmd_validate, "check a pool file or built-in dataset and print a summary"),
    "embed": (add_embed_args, cmd_embed, "embed a pool with a frozen Hugging Face model (cached)"),
    "check": (add_check_args, cmd_check,
              "learnability check: can these features learn the task, and will more labels help?"),
    "run": (add_run_args, cmd_run, "simulate an active-learning run with the dataset's labels as oracle"),
    "compare": (add_compare_args, cmd_compare, "compare run folders: curves and labels saved"),
    "backup": (add_backup_args, cmd_backup, "back up a session's label database (consistent while labelling)"),
    "export": (add_export_args, cmd_export, "write a session's labels: TRL JSONL (standard or conversational), "
               "Parquet, a datasets folder or the event log"),
    "labelstudio": (add_labelstudio_args, cmd_labelstudio,
                    "Label Studio: export the batch as tasks, import its JSON export as labels"),
}


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """The ``balpm`` parser; with ``preset``, the commands that take ``--preset`` default to its settings."""
    from balpm.config import preset_settings

    parser = argparse.ArgumentParser(prog="balpm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, handler, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(handler=handler)
        if preset and any(a.dest == "preset" for a in p._actions):
            p.set_defaults(**preset_settings(preset))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; with ``--preset``, parsed again with the preset's settings as the defaults, so the
    options given still win wherever they stand."""
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None):
        args = build_parser(args.preset).parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
