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
