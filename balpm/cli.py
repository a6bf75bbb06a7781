"""The ``balpm`` command line: ``balpm validate | embed | run | compare``.

Each sub-command is a thin wrapper over the library. A user's mistake (a bad file, an unknown dataset name) is
printed as one located line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def cmd_validate(args: argparse.Namespace) -> int:
    """Load a pool, print its summary; a bad file gives one located line on stderr and exit status 2."""
    import json

    from balpm.data import PoolFormatError, format_summary, load_pool, summarize

    try:
        pool = load_pool(args.source, seed=args.seed, fmt=getattr(args, "format", None))
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
    raise NotImplementedError  # owned by the embedding layer


def cmd_run(args: argparse.Namespace) -> int:
    raise NotImplementedError  # owned by the experiment layer


def cmd_compare(args: argparse.Namespace) -> int:
    raise NotImplementedError  # owned by the experiment layer


def add_validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="pool file (JSONL/JSON/CSV/Parquet), HF save_to_disk folder, or built-in name")
    p.add_argument("--seed", type=int, default=0, help="seed of the coin that decides which completion is A")
    p.add_argument(
        "--format", choices=["jsonl", "json", "csv", "tsv", "parquet"], default=None,
        help="file format when the extension does not tell (the record layout is always detected)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="pool file or built-in name")


def add_run_args(p: argparse.ArgumentParser) -> None:
    pass


def add_compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders written by `balpm run`")


COMMANDS = {
    "validate": (add_validate_args, cmd_validate, "check a pool file or built-in dataset and print a summary"),
    "embed": (add_embed_args, cmd_embed, "embed a pool with a frozen Hugging Face model (cached)"),
    "run": (add_run_args, cmd_run, "simulate an active-learning run with the dataset's labels as oracle"),
    "compare": (add_compare_args, cmd_compare, "compare run folders: curves and labels saved"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="balpm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, handler, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
