"""Acquire page inputs from the policies' declared parameters (issue 13 item 1)."""

from __future__ import annotations

from pathlib import Path

from test_app import _app, _session, sessions  # noqa: F401  (sessions: the fixture of tests/test_app.py)

from balpm.acquisition import policy_names, policy_parameters
from balpm.session import Session


def test_acquire_inputs_are_the_policy_declared_parameters(sessions: Path) -> None:  # noqa: F811
    """The Acquire page offers exactly the parameters the chosen policy declares (label, help, lower bound and
    default from ``Policy.PARAMS``) and stores what it takes; before, it kept its own lists and gave no help."""
    s = _session(sessions)
    at = _app("pages/3_acquire.py")
    for name in policy_names():
        at.selectbox(key="acq_policy").set_value(name).run()
        assert not at.exception, at.exception
        shown = {w.key: w for w in at.number_input 
                 if str(w.key).startswith("acq_") and w.key not in ("acq_batch", "acq_seed", "acq_members")}
        declared = policy_parameters(name, advanced=False)
        assert sorted(shown) == sorted(f"acq_{p.name}" for p in declared), name
        for p in declared:
            w = shown[f"acq_{p.name}"]
            assert w.label == p.label and w.help == p.help and w.min == p.low
        again = Session.open(s.folder)
        assert again.config.acquisition.policy == name
        assert again.config.acquisition.params == {p.name: p.default for p in declared}
        again.close()
    at.selectbox(key="acq_policy").set_value("power-bald").run()
    at.number_input(key="acq_temperature").set_value(0.25).run()
    assert Session.open(s.folder).config.acquisition.params == {"temperature": 0.25}
