"""Per-layer activations and networks of layers through run folders, checkpoints, the CLI and the studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_studies import QUICK, write_idx_dataset

from xpmlp import checkpoint as ckpt
from xpmlp import runs, studies
from xpmlp.cli import main
from xpmlp.errors import CheckpointError, InputError
from xpmlp.layers import Dropout, Linear, ReLU, Tanh
from xpmlp.model import MLP, Sequential

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "mnist", n_train=300, n_test=100)


def run_cfg(data_dir: Path, **overrides) -> dict:
    return runs.make_config(**{**QUICK, "data_dir": str(data_dir), "dtype": "float64", "seed": 3, **overrides})


def homework_net(**kwargs) -> Sequential:
    return Sequential([Linear(784, 24), Tanh(), Dropout(0.1), Linear(24, 16), ReLU(), Linear(16, 10)],
                      backend="cpu", dtype="float64", seed=3, **kwargs)


def weights(folder: Path) -> dict:
    return ckpt.load(folder / "checkpoint.npz")["model"]


# -- a network of layers through a run folder --------------------------------------------------------

@pytest.fixture(scope="module")
def layer_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("runs") / "layers"
    runs.train_run(run_cfg(data_dir, epochs=4), out, log=None, model=homework_net())
    return out


def test_a_run_of_a_layer_network_records_its_layers(layer_run):
    config = json.loads((layer_run / "config.json").read_text())
    assert config["hidden"] == [24, 16] and config["activation"] == ["tanh", "relu"]
    tree = ckpt.load(layer_run / "checkpoint.npz")
    assert [layer["type"] for layer in tree["model_config"]["layers"]] == \
        ["Linear", "Tanh", "Dropout", "Linear", "ReLU", "Linear"]


@pytest.mark.parametrize("device", ["cpu", "strict", pytest.param("torch", marks=pytest.mark.needs_backend("torch"))])
def test_a_layer_network_checkpoint_loads_as_the_same_network(layer_run, device):
    model, _ = runs.load_model(layer_run / "checkpoint.npz", device)
    assert isinstance(model, Sequential)
    assert [type(layer) for layer in model.layers] == [Linear, Tanh, Dropout, Linear, ReLU, Linear]
    assert model.layers[2].p == 0.1 and model.sizes == [784, 24, 16, 10]
    for name, value in weights(layer_run).items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_xpmlp_evaluate_takes_a_layer_network(layer_run, data_dir, capsys):
    metrics = json.loads((layer_run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(layer_run / "checkpoint.npz"), "--device", "cpu", "--no-download"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert f"accuracy {metrics['test_acc']:.4f}" in head


def test_a_resumed_layer_network_is_bit_identical_to_an_uninterrupted_run(tmp_path, data_dir, layer_run):
    first = tmp_path / "first"
    runs.train_run(run_cfg(data_dir, epochs=2), first, log=None, model=homework_net())
    # resumed as the command does: the checkpoint alone rebuilds the network, dropout generator included
    assert main(["train", "--resume", str(first / "checkpoint.npz"), "--epochs", "4", "--quiet"]) == 0
    for name, value in weights(layer_run).items():
        assert weights(first)[name].tobytes() == value.tobytes(), name
    resumed, straight = (json.loads((f / "history.json").read_text())["eval"] for f in (first, layer_run))
    assert [(e["train_loss"], e["val_acc"]) for e in resumed] == [(e["train_loss"], e["val_acc"]) for e in straight]


def test_a_model_whose_widths_do_not_fit_the_data_is_refused(tmp_path, data_dir):
    net = Sequential([Linear(100, 8), ReLU(), Linear(8, 10)], backend="cpu")
    with pytest.raises(InputError, match="takes 100 inputs .* has 784"):
        runs.train_run(run_cfg(data_dir), tmp_path / "x", log=None, model=net)


def _altered(layer_run: Path, tmp_path: Path, change) -> Path:
    tree = ckpt.load(layer_run / "checkpoint.npz")
    change(tree)
    return ckpt.save(tmp_path / "altered.npz", tree)


@pytest.mark.parametrize("change,words", [
    (lambda t: t["model_config"]["layers"].__setitem__(1, {"type": "os.system", "command": "rm -rf /"}),
     "unknown layer"),
    (lambda t: t["model_config"]["layers"].__setitem__(0, {"type": "Linear", "in_features": 10**7,
                                                           "out_features": 10**7}), "cannot be rebuilt"),
    (lambda t: t["model_config"].__setitem__("layers", "Linear"), "not a list"),
    (lambda t: t["model_config"].__setitem__("sizes", [784, 10**6, 16, 10]), "do not have the shapes"),
    (lambda t: t["model_config"]["layers"][3].update(out_features=17), "cannot be rebuilt"),
])
def test_an_altered_layer_network_checkpoint_is_refused_before_anything_is_built(layer_run, tmp_path, change,
                                                                                   words):
    path = _altered(layer_run, tmp_path, change)
    for load in (lambda: runs.load_model(path, "cpu"),
                 lambda: runs.train_run(dict(ckpt.load(path)["config"]), tmp_path / "r", resume=path, log=None)):
        with pytest.raises(CheckpointError) as info:
            load()
        assert words in str(info.value) and "\n" not in str(info.value)


# -- old checkpoints, the CLI ---------------------------------------------------------------------------

def test_an_old_single_name_checkpoint_still_loads(tmp_path):
    model = MLP([6, 5, 3], activation="tanh", backend="cpu", dtype="float64", seed=2)
    old_config = {"sizes": [6, 5, 3], "activation": "tanh", "init": "he", "dtype": "float64", "seed": 2}
    ckpt.save(tmp_path / "old.npz", {"model_config": old_config, "model": model.state_dict()})
    back, _ = runs.load_model(tmp_path / "old.npz", "cpu")
    assert type(back) is MLP and back.activation == "tanh" and back.hidden_activations == ["tanh"]
    X = np.random.default_rng(0).standard_normal((4, 6))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_train_takes_one_activation_per_hidden_layer(tmp_path, data_dir, capsys):
    base = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--no-download", "--val-size", "50",
            "--epochs", "1", "--device", "cpu", "--quiet"]
    out = tmp_path / "run"
    assert main([*base, "--hidden", "16", "12", "--activation", "tanh", "relu", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["activation"] == ["tanh", "relu"]
    model, _ = runs.load_model(out / "checkpoint.npz", "cpu")
    assert model.hidden_activations == ["tanh", "relu"]
    assert main([*base, "--hidden", "16", "12", "--activation", "tanh", "relu", "relu", "--out",
                 str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 names" in err[0] and "2 hidden layers" in err[0]
    assert not (tmp_path / "bad").exists()


def test_default_run_folder_names_the_activations(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--no-download", "--val-size", "50",
                 "--epochs", "1", "--device", "cpu", "--quiet", "--hidden", "8", "8",
                 "--activation", "tanh", "relu"]) == 0
    [folder] = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("mnist-8-8-tanh+relu-")


# -- the studies ------------------------------------------------------------------------------------------

def test_compare_takes_whole_networks_with_per_layer_lists(tmp_path, data_dir):
    settings = {**QUICK, "epochs": 1, "hidden": [16, 8], "data_dir": str(data_dir),
                "activations": [["tanh", "relu"], "relu"]}
    results = studies.compare(settings, tmp_path / "cmp", log=lambda line: None, command="test")
    assert [r["config"]["activation"] for r in results["runs"]] == [["tanh", "relu"], "relu"]
    assert (tmp_path / "cmp" / "W1_tanh_relu.png").is_file()
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| tanh+relu |" in report and "| relu |" in report
    with pytest.raises(InputError, match="tanh\\+relu listed more than once"):
        studies.compare({**settings, "activations": [["tanh", "relu"], ["tanh", "relu"]]}, tmp_path / "c2")


def test_the_homework_spec_holds_the_homeworks_three_candidates():
    spec = studies.load_spec(ROOT / "scripts" / "specs" / "fashion-homework.yaml")
    assert spec["dataset"] == "fashion-mnist"
    assert {k: spec["base"][k] for k in ("optimizer", "lr", "batch_size", "init")} == \
        {"optimizer": "sgd", "lr": 1e-3, "batch_size": 128, "init": "he"}
    got = [(c["hidden"], c["activation"], c["reg"], c["epochs"]) for c in studies.expand_spec(spec)]
    assert got == [([514, 256, 128, 64], "relu", 1e-3, 200), ([500, 500], "relu", 1e-4, 300),
                   ([500, 500], ["tanh", "relu"], 1e-3, 200)]


def test_a_short_homework_study_builds_the_three_networks_as_written(tmp_path):
    data = write_idx_dataset(tmp_path / "fashion", n_train=200, n_test=50, seed=4)  # Fashion-MNIST's format
    spec = studies.load_spec(ROOT / "scripts" / "specs" / "fashion-homework.yaml")
    out = tmp_path / "study"
    results = studies.sweep(spec, out, overrides={"data_dir": str(data), "download": False, "epochs": 1,
                                                  "val_size": 50, "device": "cpu"}, log=lambda line: None)
    built = []
    for row in sorted(results["ranking"], key=lambda r: r["config"]["epochs"] or 0):
        model, tree = runs.load_model(Path(row["run_dir"]) / "checkpoint.npz", "cpu")
        built.append((model.sizes, model.hidden_activations, tree["config"]["lr"], tree["config"]["batch_size"],
                      tree["config"]["reg"], tree["config"]["init"]))
    assert sorted(built, key=repr) == sorted([
        ([784, 514, 256, 128, 64, 10], ["relu"] * 4, 1e-3, 128, 1e-3, "he"),
        ([784, 500, 500, 10], ["relu", "relu"], 1e-3, 128, 1e-4, "he"),
        ([784, 500, 500, 10], ["tanh", "relu"], 1e-3, 128, 1e-3, "he")], key=repr)
    report = (out / "report.md").read_text()
    assert "tanh+relu" in report and "784-514-256-128-64-10" in report and "Selected:" in report


def test_sweep_curves_are_labelled_with_the_network_and_its_activations():
    from xpmlp.studies.sweep_study import _legend

    row = {"config": {"hidden": [500, 500], "activation": ["tanh", "relu"], "lr": 1e-3, "reg": 1e-3, "epochs": 200},
           "metrics": {"sizes": [784, 500, 500, 10]}}
    assert _legend(3, row) == "#3 784-500-500-10 tanh+relu lr 0.001 λ 0.001 e200"
