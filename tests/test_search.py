"""Optuna search over a spec's space: the space and options checked before anything runs, TPE with Hyperband
pruning, a rerun that continues the same study, Ctrl-C and a rerun that resumes the trial, a database storage,
and sweeps without Optuna."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from test_studies import QUICK, write_idx_dataset
from test_studies_faults import interrupt_fit

from xpmlp import studies
from xpmlp.cli import main
from xpmlp.errors import InputError

BASE = {k: v for k, v in QUICK.items() if k != "dataset"}
LR = {"low": 0.1, "high": 0.2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "mnist")


def quiet(line: str) -> None:
    pass


@pytest.mark.parametrize("spec, words", [
    ({"space": {"lr": {"low": 0.1}}, "trials": 2}, "space lr: give both low and high"),
    ({"space": {"lr": {"low": 0.3, "high": 0.1}}, "trials": 2}, "low 0.3 is above high 0.1"),
    ({"space": {"lr": {"low": 0, "high": 0.1, "log": True}}, "trials": 2}, "a log scale needs low > 0"),
    ({"space": {"lr": {**LR, "log": True, "step": 0.01}}, "trials": 2}, "give log or step, not both"),
    ({"space": {"batch_size": {"low": 8, "high": 64, "step": 2.5}}, "trials": 2}, "step must be a positive integer"),
    ({"space": {"epochs": {"low": 0, "high": 3}}, "trials": 2}, "epochs must be a positive integer"),
    ({"space": {"activation": {"low": 1, "high": 2}}, "trials": 2}, "a range needs a numeric setting"),
    ({"space": {"activation": {"choices": []}}, "trials": 2}, "choices must be a non-empty list"),
    ({"space": {"activation": {"choices": ["relu", "relu"]}}, "trials": 2}, "listed twice"),
    ({"space": {"hidden": {"choices": [8]}}, "trials": 2}, "hidden must be a list"),
    ({"space": {"lr": {**LR, "choices": [0.1]}}, "trials": 2}, "not both"),
    ({"space": {"lr": {**LR, "scale": "log"}}, "trials": 2}, "unknown key(s) ['scale']"),
    ({"space": {"colour": {"choices": [1]}}, "trials": 2}, "space: unknown setting(s) ['colour']"),
    ({"space": {"lr": [0.1, 0.2]}, "trials": 2}, "give {low: A, high: B}"),
    ({"space": {}, "trials": 2}, "space must be a mapping"),
    ({"space": {"lr": LR}}, "needs trials: N"),
    ({"space": {"lr": LR}, "trials": 0}, "trials must be a positive integer"),
    ({"space": {"lr": LR}, "trials": 2, "prune": "asha"}, "prune must be 'median', 'hyperband' or 'none'"),
    ({"space": {"lr": LR}, "trials": 2, "search": "grid"}, "'tpe', 'random' or 'cmaes' with a space"),
    ({"space": {"lr": LR}, "trials": 2, "samples": 3}, "a search over a space counts trials"),
    ({"space": {"lr": LR}, "trials": 2, "storage": "redis://x"}, "storage must be a database URL"),
    ({"space": {"lr": LR}, "grid": {"lr": [0.1]}, "trials": 2}, "either 'grid'"),
    ({"grid": {"lr": [0.1]}, "search": "tpe"}, "'grid' or 'random' with a grid"),
    ({"grid": {"lr": [0.1]}, "trials": 3}, "trials belong to a search over a 'space'"),
])
def test_a_bad_space_or_search_option_is_one_line(spec, words):
    with pytest.raises(InputError) as exc:
        studies.check_spec({"dataset": "mnist", **spec})
    assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def search_spec(**changes) -> dict:
    return {"name": "tiny-search", "dataset": "mnist", "search": "tpe", "trials": 8, "prune": "hyperband", "seed": 0,
            "base": {**BASE, "hidden": [16], "epochs": 9, "batch_size": 32},
            "space": {"lr": {"low": 1.0e-4, "high": 0.3, "log": True}, "hidden": {"choices": [[16], [32, 16]]},
                      "dropout": {"low": 0, "high": 0.5}}, **changes}


def write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_count(out: Path) -> int:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    return len(optuna.load_study(study_name="tiny-search", storage=storage).trials)


def test_tpe_with_hyperband_prunes_selects_by_validation_and_a_rerun_continues_the_study(tmp_path, data_dir, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "search"
    argv = ["sweep", str(write(tmp_path / "s.yaml", search_spec())), "--out", str(out), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete" and results["search"]["prune"] == "hyperband"
    ranking, pruned = results["ranking"], results["pruned"]
    assert pruned and ranking and len(ranking) + len(pruned) + len(results["failed"]) == 8
    vals = [r["metrics"]["best_val_acc"] for r in ranking]
    assert vals == sorted(vals, reverse=True) and results["selected"][0]["trial"] == ranking[0]["trial"]
    assert all(r["state"] == "complete" for r in ranking)
    for r in pruned:
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert r["state"] == "pruned" and metrics["stopped"].startswith("pruned at step")
        assert metrics["steps"] < 9 * 8 or "evaluation 9" in metrics["stopped"]  # 8 steps an epoch
    report = (out / "report.md").read_text()
    assert "## Pruned trials" in report and "hyperband" in report
    assert len(list((out / "runs").iterdir())) == 8 and trial_count(out) == 8
    capsys.readouterr()
    # a rerun asking for 10 trains two more trials (here in two worker processes, which report to the journal)
    write(tmp_path / "s.yaml", search_spec(trials=10))
    assert main([*argv, "--jobs", "2"]) == 0
    lines = capsys.readouterr().out
    assert lines.count("] queued trial-") == 2 and trial_count(out) == 10
    assert len(list((out / "runs").iterdir())) == 10
    assert main(argv) == 0  # complete: nothing to train
    assert "training trial-" not in capsys.readouterr().out and trial_count(out) == 10


def test_ctrl_c_in_a_search_and_a_rerun_resumes_the_trial_in_a_database_study(tmp_path, data_dir, monkeypatch, capsys):
    pytest.importorskip("optuna")
    spec = search_spec(search="random", trials=3, storage=f"sqlite:///{tmp_path / 'study.db'}")
    del spec["prune"]
    path = write(tmp_path / "s.yaml", spec)
    out = tmp_path / "search"
    argv = ["sweep", str(path), "--out", str(out), "--data-dir", str(data_dir)]
    interrupt_fit(monkeypatch, fit_number=2, at_step=20)
    assert main(argv) == 130
    results = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in results["unfinished"]] == ["interrupted"] and len(results["ranking"]) == 1
    assert not (out / "optuna.journal").exists() and (tmp_path / "study.db").is_file()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out
    name = Path(results["unfinished"][0]["run_dir"]).name
    assert "search: resuming 1 trial(s)" in lines and f"resuming {name} from its checkpoint" in lines
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete" and len(results["ranking"]) == 3
    assert all(r["metrics"]["steps"] == 9 * 8 for r in results["ranking"])


def test_a_study_started_over_another_space_is_refused(tmp_path, data_dir):
    pytest.importorskip("optuna")
    spec = search_spec(trials=1, search="random", prune="none")
    overrides = {"data_dir": str(data_dir), "epochs": 1}
    studies.sweep(spec, tmp_path / "s", overrides=overrides, log=quiet)
    other = {**spec, "space": {"lr": {"low": 0.01, "high": 0.1}}}
    with pytest.raises(InputError, match="was started over another space"):
        studies.sweep(other, tmp_path / "s", overrides=overrides, log=quiet)


def test_a_bad_value_in_the_space_fails_before_anything_is_written(tmp_path, data_dir):
    pytest.importorskip("optuna")
    spec = search_spec(space={"lr_schedule": {"choices": ["constant", "exp:2"]}})
    with pytest.raises(InputError, match="space: .*lr_schedule exp:2.*bad learning-rate schedule") as exc:
        studies.sweep(spec, tmp_path / "s", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert "\n" not in str(exc.value) and not (tmp_path / "s").exists()
    big = search_spec(space={"batch_size": {"low": 16, "high": 4096}})
    with pytest.raises(InputError, match="larger than the training set"):
        studies.sweep(big, tmp_path / "s", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert not (tmp_path / "s").exists()


def test_without_optuna_a_search_says_what_to_install_and_grids_still_run(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    out = tmp_path / "search"
    argv = ["sweep", str(write(tmp_path / "s.yaml", search_spec())), "--out", str(out), "--data-dir", str(data_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'xpmlp[optuna]'" in err and err.count("\n") == 1 and not out.exists()
    grid = {"dataset": "mnist", "base": {**BASE, "epochs": 1}, "grid": {"lr": [0.05]}}
    results = studies.sweep(grid, tmp_path / "grid", overrides={"data_dir": str(data_dir)}, log=quiet)
    assert results["status"] == "complete" and len(results["ranking"]) == 1


def test_a_space_may_mix_an_activation_name_and_a_per_layer_list(tmp_path, data_dir):
    pytest.importorskip("optuna")
    spec = search_spec(trials=4, search="random", prune="none",
                       space={"activation": {"choices": ["relu", ["tanh", "relu"]]}})
    spec["base"] = {**spec["base"], "hidden": [8, 8]}
    results = studies.sweep(spec, tmp_path / "s", overrides={"data_dir": str(data_dir), "epochs": 1}, log=quiet)
    tried = {json.dumps(r["config"]["activation"]) for r in results["ranking"]}
    assert tried <= {'"relu"', '["tanh", "relu"]'} and len(results["ranking"]) == 4
    assert '["tanh", "relu"]' in tried  # 4 random draws of 2 choices: seeded, so this draw is fixed
    report = (tmp_path / "s" / "report.md").read_text()
    assert "activation tanh+relu" in report and "['tanh'" not in report
