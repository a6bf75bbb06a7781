"""Issue 12 section 2: ``--preset paper``, the paper's exact model and policy configuration, and its override order."""

from __future__ import annotations

import pytest

from balpm.cli import build_parser, config_from_namespace, parse_args
from balpm.config import PRESETS, AcquisitionConfig, EnsembleConfig, SessionConfig, preset_settings
from balpm.model import PreferenceEnsemble

PAPER = {"hidden": (2048, 256), "activation": "tanh", "init_std": 0.01, "lr": 3e-5, "patience": 3,
         "n_members": 5, "batch_size": 32, "bootstrap": False}


def test_paper_preset_is_the_papers_configuration():
    ens = EnsembleConfig.preset("paper")
    params = ens.model_params()
    assert {k: params[k] for k in PAPER} == PAPER
    assert params["max_epochs"] >= 50  # lr 3e-5 needs ~30 epochs: the cap must leave early stopping in charge
    model = PreferenceEnsemble(**params)
    assert model.hidden == (2048, 256) and model.init_std == 0.01 and model.lr == 3e-5
    acq = AcquisitionConfig.preset("paper")
    assert acq.policy == "bal-pm" and acq.policy_params() == {"beta": 0.01, "k": 13, "d": 1.0}
    assert EnsembleConfig.preset("paper", lr=1e-3).lr == 1e-3  # overrides win in the library too
    assert AcquisitionConfig.preset("paper", beta=0.1).params["beta"] == 0.1
    with pytest.raises(ValueError, match="unknown preset 'papr'.*paper"):
        preset_settings("papr")
    preset_settings("paper")["lr"] = 1.0  # a copy: the preset itself cannot be changed by a caller
    assert PRESETS["paper"]["lr"] == 3e-5


def test_activation_and_init_std_round_trip_through_the_session_config():
    cfg = SessionConfig(ensemble=EnsembleConfig.preset("paper"))
    assert SessionConfig.from_dict(cfg.to_dict()).ensemble == cfg.ensemble
    assert EnsembleConfig.from_model_params(cfg.ensemble_params()) == cfg.ensemble
    old = {"n_members": 5, "hidden": [64], "lr": 1e-3}  # a file written before the two settings existed
    assert EnsembleConfig.from_model_params(old) == EnsembleConfig(bootstrap=False)  # plain members then


def test_cli_preset_sets_defaults_and_given_options_override_it_wherever_they_stand():
    cfg = config_from_namespace(parse_args(["run", "--dataset", "x", "--preset", "paper"]))
    assert cfg.ensemble == EnsembleConfig.preset("paper")
    assert cfg.acquisition.policy_params() == {"beta": 0.01, "k": 13, "d": 1.0}
    for argv in (["run", "--lr", "1e-4", "--k", "7", "--preset", "paper"],
                 ["run", "--preset", "paper", "--lr", "1e-4", "--k", "7"]):
        cfg = config_from_namespace(parse_args(argv))
        assert cfg.ensemble.lr == 1e-4 and cfg.ensemble.hidden == (2048, 256) and cfg.ensemble.init_std == 0.01
        assert cfg.acquisition.policy_params() == {"beta": 0.01, "k": 7, "d": 1.0}
    plain = config_from_namespace(parse_args(["run"]))  # no preset: the defaults, no ``d`` added
    assert plain.ensemble == EnsembleConfig() and plain.acquisition.policy_params() == {"beta": 0.01, "k": 13}
    with pytest.raises(SystemExit):
        parse_args(["run", "--preset", "nope"])


def test_cli_help_names_the_preset_and_its_settings(capsys):
    sub = next(a for a in build_parser()._actions if a.choices and "run" in a.choices).choices["run"]
    with pytest.raises(SystemExit):
        sub.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--preset {paper}" in text and "override it" in text
    assert "hidden 2048,256" in text and "lr 3e-05" in text and "init_std 0.01" in text and "d 1.0" in text
    assert "--init-std" in text and "--activation" in text


def test_bootstrap_is_the_default_and_files_saved_before_it_read_back_as_plain_members():
    """Issue 12: bootstrapped members became the default; a config or model saved before the setting existed
    trained plain members and must read back so (else a finished run would pass for today's configuration)."""
    from balpm.experiment import ExperimentConfig

    assert EnsembleConfig().bootstrap is True and PreferenceEnsemble().bootstrap is True
    assert EnsembleConfig().model_params()["bootstrap"] is True
    old = {"ensemble": {"n_members": 3, "hidden": [8]}, "pool": {"dataset": "x"}}
    assert ExperimentConfig.from_dict(old).ensemble.bootstrap is False
    assert SessionConfig.from_dict(old).ensemble.bootstrap is False
    assert EnsembleConfig.from_model_params({"n_members": 3}).bootstrap is False
    new = ExperimentConfig()
    assert ExperimentConfig.from_dict(new.to_dict()) == new  # written now: round trips as True
    state = PreferenceEnsemble(n_members=1, hidden=(2,), max_epochs=1).fit([[0.0, 1.0]] * 4, [[1.0, 0.0]] * 4,
                                                                           [1, 0, 1, 1]).state_dict()
    import json

    import numpy as np

    params = json.loads(str(state["params"]))
    params.pop("bootstrap")
    state["params"] = np.array(json.dumps(params))
    assert PreferenceEnsemble.from_state_dict(state).bootstrap is False
    assert config_from_namespace(parse_args(["run", "--no-bootstrap"])).ensemble.bootstrap is False
    assert config_from_namespace(parse_args(["run"])).ensemble.bootstrap is True
