"""The studies end to end on tiny generated data written in the real on-disk formats."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from xpmlp import studies
from xpmlp.cli import main
from xpmlp.errors import InputError


def write_idx_dataset(folder: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """A learnable 10-class MNIST-format data set (28x28 uint8, gzipped IDX) in ``folder``."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (10, 28, 28))

    def images(labels: np.ndarray) -> np.ndarray:
        noise = rng.integers(-40, 41, (len(labels), 28, 28))
        return np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)

    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images(labels).tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "mnist")


QUICK = {"dataset": "mnist", "hidden": [32], "epochs": 4, "batch_size": 16, "lr": 0.02, "optimizer": "sgd",
         "reg": 0.0, "val_size": 50, "device": "cpu", "download": False}


def test_compare_writes_report_results_plots_and_skips_finished_runs(tmp_path, data_dir):
    out = tmp_path / "cmp"
    lines: list[str] = []
    settings = {**QUICK, "data_dir": str(data_dir), "activations": ["relu", "tanh"]}
    results = studies.compare(dict(settings), out, log=lines.append, command="xpmlp compare test")
    assert [r["config"]["activation"] for r in results["runs"]] == ["relu", "tanh"]
    for name in ("report.md", "results.json", "loss.png", "accuracy.png", "W1_relu.png", "W1_tanh.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert [r["config"]["activation"] for r in saved["runs"]] == ["relu", "tanh"]
    report = (out / "report.md").read_text()
    table_rows = [line for line in report.splitlines() if line.startswith("| relu") or line.startswith("| tanh")]
    assert len(table_rows) == 2
    assert "![loss](loss.png)" in report and "W1_relu.png" in report and "xpmlp compare test" in report
    for r in saved["runs"]:
        run = Path(r["run_dir"])
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test_acc"] == r["metrics"]["test_acc"]
        assert metrics["test_acc"] > 0.5  # prototypes plus noise are easy to separate
        assert (run / "checkpoint.npz").is_file() and (run / "history.json").is_file()
    # a second run with the same --out trains nothing again
    lines.clear()
    again = studies.compare(dict(settings), out, log=lines.append)
    assert all(r["skipped"] for r in again["runs"])
    assert sum("already finished, skipped" in line for line in lines) == 2
    assert [r["metrics"]["test_acc"] for r in again["runs"]] == [r["metrics"]["test_acc"] for r in saved["runs"]]


def test_compare_retrains_a_run_whose_settings_changed(tmp_path, data_dir):
    out = tmp_path / "cmp"
    settings = {**QUICK, "data_dir": str(data_dir), "activations": ["relu"]}
    studies.compare(dict(settings), out, log=lambda line: None)
    run_dir = next((out / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert studies.finished_metrics(run_dir, {**json.loads((run_dir / "config.json").read_text())}) == metrics
    changed = {**json.loads((run_dir / "config.json").read_text()), "val_size": 60}
    assert studies.finished_metrics(run_dir, changed) is None


def test_compare_cli_with_mnist_preset_quick(tmp_path, data_dir, capsys):
    out = tmp_path / "cli"
    code = main(["compare", "--preset", "mnist", "--activations", "sigmoid", "relu", "--hidden", "12",
                 "--epochs", "1", "--val-size", "50", "--data-dir", str(data_dir), "--no-download",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "activation" in text and "sigmoid" in text and "relu" in text
    results = json.loads((out / "results.json").read_text())
    cfgs = [r["config"] for r in results["runs"]]
    # the homework's protocol (plain SGD, He init, lr 1e-3, batch 128, reg 1e-8), with the quick overrides applied
    assert all((c["optimizer"], c["init"], c["lr"], c["batch_size"], c["reg"]) == ("sgd", "he", 1e-3, 128, 1e-8)
               for c in cfgs)
    assert all(c["epochs"] == 1 and c["iterations"] is None and c["hidden"] == [12] for c in cfgs)
    report = (out / "report.md").read_text()
    settings_line = next(line for line in report.splitlines() if line.startswith("Settings: "))
    assert "optimizer = sgd" in settings_line and "init = he" in settings_line and "lr = 0.001" in settings_line
    assert "sigmoid 0.60, ReLU 0.87, tanh 0.89" in report and "vanishing gradients" in report
    assert "Measured here (test accuracy, lowest first): " in report


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))
    return path


def test_sweep_ranks_by_validation_and_reports_test_of_selected_only(tmp_path, data_dir, monkeypatch):
    spec = {"name": "t", "dataset": "mnist", "base": {**{k: v for k, v in QUICK.items() if k != "dataset"}},
            "candidates": [{"hidden": [8], "lr": 0.05}, {"hidden": [16], "lr": 0.1}, {"hidden": [4], "lr": 0.01}]}
    out = tmp_path / "sw"
    results = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lambda line: None)
    ranking = results["ranking"]
    vals = [r["metrics"]["best_val_acc"] for r in ranking]
    assert vals == sorted(vals, reverse=True)
    assert results["selected"][0]["run_dir"] == ranking[0]["run_dir"]
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert [row.rstrip(" |").endswith("yes") for row in rows] == [True, False, False]
    assert (out / "accuracy.png").is_file()


def test_a_sweep_over_augmentation_trains_with_it_and_shows_it_in_the_ranking(tmp_path, data_dir):
    spec = {"name": "t", "dataset": "mnist", "base": {**{k: v for k, v in QUICK.items() if k != "dataset"}},
            "candidates": [{"augment": "shift:1"}, {"augment": "none"}]}
    out = tmp_path / "sw"
    results = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lambda line: None)
    weights = {r["config"]["augment"]: np.load(Path(r["run_dir"]) / "checkpoint.npz")["model/W1"]
               for r in results["ranking"]}
    assert not np.array_equal(weights["shift:1"], weights["none"])  # the shifted images changed the training
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| rank"))
    assert "| augment |" in header and "dropout" not in header  # a column for what differs, none for what does not
    assert sum("| shift:1 |" in line for line in report.splitlines()) == 1


def test_ranking_columns_name_every_setting_that_differs():
    from xpmlp.studies.ranking import ranking_header, ranking_row, varying_settings

    rows = [{"config": {"hidden": [8], "activation": "relu", "optimizer": "sgd", "epochs": 2, "iterations": None,
                        "lr": 0.1, "reg": 0.0, "dropout": p, "augment": "flip", "seed": 0},
             "metrics": {"best_val_acc": 0.9, "test_acc": 0.8, "sizes": [4, 8, 3]}} for p in (0.0, 0.25)]
    extra = varying_settings(rows)
    assert extra == ["dropout"]
    assert ranking_header(extra)[7] == "dropout"
    assert ranking_row(1, rows[1], 1, extra)[7] == "0.25"


def test_selection_ignores_test_accuracy():
    rows = [
        {"config": {"activation": "a"}, "metrics": {"best_val_acc": 0.80, "test_acc": 0.99, "params": 10}},
        {"config": {"activation": "b"}, "metrics": {"best_val_acc": 0.90, "test_acc": 0.10, "params": 10}},
        {"config": {"activation": "c"}, "metrics": {"best_val_acc": 0.85, "test_acc": 0.50, "params": 10}},
    ]
    assert [r["config"]["activation"] for r in studies.rank_by_validation(rows)] == ["b", "c", "a"]


def test_expand_grid_and_random_sample():
    spec = {"grid": {"hidden": [[8], [8, 8]], "lr": [0.1, 0.01], "activation": "relu"}}
    combos = studies.expand_spec(spec)
    assert len(combos) == 4
    assert {(tuple(c["hidden"]), c["lr"]) for c in combos} == {((8,), 0.1), ((8,), 0.01), ((8, 8), 0.1),
                                                              ((8, 8), 0.01)}
    assert all(c["activation"] == "relu" for c in combos)
    single = studies.expand_spec({"grid": {"hidden": [500, 500]}})
    assert single == [{"hidden": [500, 500]}]  # a list of ints is one architecture, not two
    sample = studies.expand_spec({**spec, "search": "random", "samples": 3, "seed": 1})
    assert len(sample) == 3 and all(s in combos for s in sample)
    assert sample == studies.expand_spec({**spec, "search": "random", "samples": 3, "seed": 1})


@pytest.mark.parametrize("spec, match", [
    ([1, 2], "mapping"),
    ({"base": {}}, "grid"),
    ({"grid": {"widths": [1]}}, "unknown setting"),
    ({"grid": {"lr": [1]}, "colour": 1}, "unknown keys"),
    ({"grid": {"lr": [1]}, "search": "bayes"}, "grid' or 'random"),
])
def test_bad_specs_are_clear_errors(spec, match):
    with pytest.raises(InputError, match=match):
        studies.check_spec(spec)


def test_load_spec_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read sweep spec"):
        studies.load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        studies.load_spec(bad)


@pytest.mark.parametrize("name", ["fashion-homework.yaml", "fashion-search.yaml", "fashion-augment.yaml",
                                  "fashion-best.yaml"])
def test_shipped_specs_are_valid(name):
    path = Path(__file__).resolve().parents[1] / "scripts" / "specs" / name
    spec = studies.load_spec(path)
    configs = studies.expand_spec(spec)
    assert configs and spec["dataset"] == "fashion-mnist"
    if name == "fashion-homework.yaml":
        assert len(configs) == 3


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_candidate_is_recorded_and_the_sweep_goes_on(tmp_path, data_dir):
    spec = {"dataset": "mnist", "base": {**{k: v for k, v in QUICK.items() if k != "dataset"}},
            "candidates": [{"hidden": [16], "lr": 1e30, "activation": "relu"}, {"hidden": [16], "lr": 0.02}]}
    out = tmp_path / "div"
    lines: list[str] = []
    results = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lines.append)
    ranking = results["ranking"]
    assert ranking[0]["config"]["lr"] == 0.02 and ranking[0]["metrics"]["best_val_acc"] > 0.5
    assert ranking[1]["config"]["lr"] == 1e30
    assert ranking[1]["metrics"]["stopped"].startswith("diverged") and ranking[1]["metrics"]["test_acc"] is None
    assert any("diverged" in line for line in lines)
    # the diverged run is a finished result: running the study again trains nothing
    again = studies.sweep(spec, out, overrides={"data_dir": str(data_dir)}, log=lambda line: None)
    assert all(r["skipped"] for r in again["ranking"])


def write_cifar_folder(root: Path, per_batch: int = 60, seed: int = 0) -> Path:
    """A learnable CIFAR-10 look-alike in the real python-pickle batch format."""
    import pickle

    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (10, 3072))
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        data = np.clip(protos[labels] + rng.integers(-30, 31, (n, 3072)), 0, 255).astype(np.uint8)
        return {b"batch_label": b"x", b"labels": labels.tolist(), b"data": data,
                b"filenames": [b"f%d.png" % i for i in range(n)]}

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch(per_batch), protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return root


def test_compare_cifar10_preset_quick_on_files_in_the_real_format(tmp_path, capsys):
    root = write_cifar_folder(tmp_path / "data")
    out = tmp_path / "cifar"
    code = main(["compare", "--preset", "cifar10", "--activations", "relu", "selu", "--iterations", "40",
                 "--log-every", "20", "--hidden", "20", "--val-size", "20", "--data-dir", str(root),
                 "--no-download", "--device", "cpu", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "iteration 20 / 40: loss" in printed and "iteration 40 / 40: loss" in printed
    results = json.loads((out / "results.json").read_text())
    for run in results["runs"]:
        cfg = run["config"]
        # the homework's protocol, kept under the quick overrides
        assert (cfg["init"], cfg["preprocess"], cfg["lr_schedule"], cfg["batch_size"]) == \
            ("std:1e-4", "mean-image", "exp:0.95", 200)
        history = json.loads((Path(run["run_dir"]) / "history.json").read_text())
        # std-1e-4 weights give the homework's first loss of ln 10
        assert history["iteration_loss"][0] == pytest.approx(np.log(10), abs=1e-3)
        assert [e["iteration"] for e in history["eval"]] == [20, 40]
    import matplotlib.image
    grid = matplotlib.image.imread(out / "W1_relu.png")
    assert grid.ndim == 3 and grid.shape[2] in (3, 4)


def test_command_line_settings_win_over_the_spec_and_keys_tell_configs_apart(tmp_path, data_dir):
    spec = {"dataset": "mnist", "base": {**{k: v for k, v in QUICK.items() if k != "dataset"}},
            "candidates": [{"hidden": [8], "epochs": 5}]}
    results = studies.sweep(spec, tmp_path / "o", overrides={"data_dir": str(data_dir), "epochs": 1},
                            log=lambda line: None)
    assert results["ranking"][0]["config"]["epochs"] == 1
    history = json.loads((Path(results["ranking"][0]["run_dir"]) / "history.json").read_text())
    assert len(history["eval"]) == 1
    from xpmlp.runs import make_config
    a = make_config(**{**QUICK, "lr_schedule": "cosine"})
    b = make_config(**{**QUICK, "lr_schedule": "constant"})
    assert studies.run_key(a) != studies.run_key(b)
    assert studies.run_key(a) == studies.run_key({**a, "device": "torch", "data_dir": "/elsewhere"})


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_compare_reports_a_diverged_activation(tmp_path, data_dir):
    settings = {**QUICK, "data_dir": str(data_dir), "lr": 1e30, "activations": ["relu"]}
    results = studies.compare(settings, tmp_path / "c", log=lambda line: None)
    assert all(r["metrics"]["stopped"].startswith("diverged") for r in results["runs"])
    report = (tmp_path / "c" / "report.md").read_text()
    assert "| relu | – | – | – | – | – |" in report


def test_the_presets_are_the_homework_protocols_and_every_preset_passes_the_checks():
    from xpmlp.studies.checks import make_configs
    from xpmlp.studies.compare_study import PRESET_NOTES, PRESETS

    cifar, mnist = PRESETS["cifar10"], PRESETS["mnist"]
    assert (cifar["hidden"], cifar["init"], cifar["iterations"], cifar["batch_size"], cifar["lr"],
            cifar["lr_schedule"], cifar["reg"], cifar["preprocess"], cifar["log_every"]) == \
        ([50], "std:1e-4", 2000, 200, 1e-3, "exp:0.95", 0.25, "mean-image", 100)
    assert (mnist["hidden"], mnist["optimizer"], mnist["lr"], mnist["batch_size"], mnist["reg"], mnist["epochs"],
            mnist["init"]) == ([500, 500], "sgd", 1e-3, 128, 1e-8, 100, "he")
    assert set(PRESETS) == set(PRESET_NOTES) == {"cifar10", "mnist", "cifar10-tuned", "mnist-tuned"}
    for name, preset in PRESETS.items():
        settings = {k: v for k, v in preset.items() if k != "activations"}
        configs = make_configs({**settings, "device": "cpu"}, [{"activation": a} for a in preset["activations"]])
        assert len(configs) == len(preset["activations"]), name
