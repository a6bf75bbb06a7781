"""Issue 11 item 12: every option's help in ``balpm <command> --help`` states its default once."""

from __future__ import annotations

import re

import pytest

from balpm.cli import COMMANDS, build_parser


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and set(COMMANDS) <= set(a.choices))
    return sub.choices


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_states_each_default_once(command, capsys):
    p = _subparsers()[command]
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare on one line
    assert "(default: None)" not in text
    for action in p._actions:
        helped = " ".join(str(action.help or "").split())
        assert len(re.findall(r"\(default\b", helped)) <= 1, (action.option_strings, helped)


# (command, option, default, help as declared): the options `embed` and `check` declared by hand before; their names,
# defaults and help are kept, and now come from the command's config dataclass in balpm.config.
_COMMAND_OPTIONS = [
    ("embed", "--max-pairs", None, "embed a sample of N pairs (by group)"),
    ("embed", "--seed", 0, "seed of the A/B coin and of --max-pairs sampling"),
    ("check", "--seed", None, "seeds the labels drawn, folds, model and bootstrap (default 0; a session's own seed)"),
    ("check", "--labels", 256, "simulation: N random labelled pairs"),
    ("check", "--budget", None, "total labels the campaign would buy, for the forecast (default: the pool's size)"),
    ("check", "--folds", 5, "K of the K-fold split by prompt group"),
]


@pytest.mark.parametrize("command, option, default, help_text", _COMMAND_OPTIONS)
def test_command_options_are_declared_once_in_balpm_config(command, option, default, help_text):
    """``embed --max-pairs/--seed`` and ``check --seed`` (and check's other own options) are fields of
    EmbedCommandConfig / CheckCommandConfig, built like every other command's options: same name, default, help."""
    import dataclasses

    from balpm.config import CheckCommandConfig, EmbedCommandConfig

    cls = {"embed": EmbedCommandConfig, "check": CheckCommandConfig}[command]
    field = {f.name: f for f in dataclasses.fields(cls)}[option[2:].replace("-", "_")]
    assert (field.default, field.metadata["help"]) == (default, help_text)
    action = next(a for a in _subparsers()[command]._actions if option in a.option_strings)
    assert action.default == default and action.help.startswith(help_text)
    assert action.dest == field.name
    given = {None: "7", 0: "7", 256: "7", 5: "7"}[default]
    ns = _subparsers()[command].parse_args(["pool.jsonl", option, given])
    assert getattr(ns, field.name) == 7
