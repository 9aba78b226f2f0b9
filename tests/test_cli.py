"""Tests for the ``xpmlp`` command line: argument errors, ``devices``, ``gradcheck``, and one
run end to end on the real Fashion-MNIST (``train``, ``evaluate``, ``--resume``).

Commands run in-process through ``xpmlp.cli.main``; one subprocess checks that
``python -m xpmlp`` works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpmlp import checkpoint as ckpt
from xpmlp.backend import backend_unavailable
from xpmlp.cli import main

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_dir(), reason=f"the real Fashion-MNIST is not in {FMNIST}")
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``xpmlp ARGV`` in-process: (exit code, stdout, stderr); argparse's SystemExit becomes a code."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *words: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# -- argument errors ---------------------------------------------------------------------

TRAIN = ["train", "--dataset", "fashion-mnist", "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("extra, words", [
    (["--epochs", "1", "--lr", "-0.1"], ["learning rate", "-0.1"]),
    (["--epochs", "1", "--lr", "0"], ["learning rate"]),
    (["--epochs", "1", "--activation", "softsign"], ["activation", "softsign"]),
    (["--epochs", "1", "--iterations", "100"], ["--epochs", "--iterations"]),
    ([], ["--epochs", "--iterations"]),
    (["--epochs", "1", "--optimizer", "lbfgs"], ["optimizer", "lbfgs"]),
    (["--epochs", "1", "--lr-schedule", "linear"], ["schedule", "linear"]),
    (["--epochs", "1", "--lr-schedule", "exp:fast"], ["schedule", "exp:fast"]),
    (["--epochs", "1", "--lr-schedule", "exp:1.5"], ["schedule", "exp:1.5"]),
    (["--epochs", "1", "--init", "uniform"], ["init", "uniform"]),
    (["--epochs", "1", "--init", "std:abc"], ["init", "std:abc"]),
    (["--epochs", "1", "--reg", "-1"], ["reg"]),
    (["--epochs", "1", "--preprocess", "whiten"], ["preprocess", "whiten"]),
    (["--epochs", "1", "--augment", "rotate"], ["augment", "rotate"]),
    (["--epochs", "1", "--dataset", "mnist", "--augment", "flip"], ["flip", "mnist", "shift:N"]),
], ids=["negative-lr", "zero-lr", "activation", "both-regimes", "no-regime", "optimizer", "schedule-kind",
        "schedule-number", "schedule-gamma", "init-kind", "init-number", "negative-reg", "preprocess", "augment",
        "augment-flip-mnist"])
def test_bad_train_arguments_give_exit_2_and_one_line(capsys, tmp_path, monkeypatch, extra, words) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    rc, stdout, err = run_cli(capsys, *TRAIN, "--out", out, *extra)
    assert_one_line_error(rc, err, *words)
    assert not out.exists()  # refused before anything was loaded or written
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_gives_exit_2_and_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, "train", "--dataset", "imagenet", "--epochs", "1", "--device", "cpu", "--quiet",
                         "--no-download", "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "imagenet")


def test_unknown_device_is_refused_before_the_data_is_loaded(capsys, tmp_path, monkeypatch) -> None:
    """A typo in --device must be named at once, not after loading (or downloading) the data."""
    import xpmlp.data

    monkeypatch.chdir(tmp_path)
    loads: list[str] = []

    def no_prepare(name, *args, **kwargs):
        loads.append(name)
        raise AssertionError("the data was loaded before the device was checked")

    monkeypatch.setattr(xpmlp.data, "prepare", no_prepare)
    rc, _, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--epochs", "1", "--device", "tpu",
                         "--quiet", "--out", tmp_path / "run")
    assert loads == []
    line = assert_one_line_error(rc, err, "tpu")
    assert "device" in line


@needs_fmnist
def test_unknown_device_gives_exit_2_and_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, *TRAIN[:-3], "--device", "gpu7", "--quiet", "--no-download", "--epochs", "1",
                         "--subset", "200", "--val-size", "50", "--hidden", "8", "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "gpu7", "device")


@needs_fmnist
def test_batch_larger_than_training_set_gives_exit_2_and_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, *TRAIN, "--no-download", "--epochs", "1", "--subset", "200", "--val-size", "50",
                         "--hidden", "8", "--batch-size", "500", "--out", tmp_path / "run")
    # --subset 200 is the pool the 50 validation images are split from: 150 remain for training
    assert_one_line_error(rc, err, "batch size 500", "150 samples")


def test_evaluate_unknown_device_gives_exit_2(capsys, tmp_path) -> None:
    path = tmp_path / "checkpoint.npz"
    ckpt.save(path, {"model_config": {"sizes": [4, 3], "activation": "relu", "init": "he", "dtype": "float32",
                                      "seed": 0}, "model": {"W1": np.zeros((4, 3), np.float32),
                                                            "b1": np.zeros(3, np.float32)}})
    rc, _, err = run_cli(capsys, "evaluate", path, "--device", "quantum")
    assert_one_line_error(rc, err, "quantum")


@pytest.mark.parametrize("make", ["missing", "truncated"])
def test_evaluate_bad_checkpoint_gives_exit_2_naming_the_file(capsys, tmp_path, make) -> None:
    path = tmp_path / "checkpoint.npz"
    if make == "truncated":
        ckpt.save(path, {"model": {"W1": np.arange(1000.0)}})
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    rc, _, err = run_cli(capsys, "evaluate", path, "--device", "cpu")
    assert_one_line_error(rc, err, str(path))


@pytest.mark.parametrize("extra, words", [
    (["--batch-size", "0"], ["--batch-size", "positive"]),
    (["--epochs", "two"], ["--epochs", "two"]),
    (["--dtype", "float16"], ["--dtype", "float16"]),
    (["--lr", "fast"], ["--lr", "fast"]),
])
def test_malformed_values_are_usage_errors(capsys, tmp_path, monkeypatch, extra, words) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, *TRAIN, *extra)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: xpmlp train: "), err  # one line, no usage block
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in err


def test_no_command_is_a_usage_error(capsys) -> None:
    rc, _, err = run_cli(capsys)
    assert rc == 2 and err.startswith("error: xpmlp: ") and len(err.strip().splitlines()) == 1


# -- devices and gradcheck -----------------------------------------------------------------

def test_devices_lists_cpu_usable_and_cuda_with_a_reason(capsys) -> None:
    rc, out, _ = run_cli(capsys, "devices")
    assert rc == 0
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+(usable|not usable): (.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3).strip())
    assert rows["cpu"][0] == "usable" and "NumPy" in rows["cpu"][1]
    if not backend_unavailable("cuda"):
        assert rows["cuda:0"][0] == "usable"
    else:
        state, why = rows["cuda"]
        assert state == "not usable"
        assert len(why) > 10 and ("CuPy" in why or "GPU" in why)
    assert rows["strict"][0] == ("not usable" if backend_unavailable("strict") else "usable")
    assert rows["torch"][0] == ("not usable" if backend_unavailable("torch") else "usable")
    assert out.strip().splitlines()[-1].startswith("auto: using ")


GRAD_ROW = re.compile(r"^(?P<check>\S.*?)\s{2,}(?P<err>\d\.\d{2}e[+-]\d{2})\s{2}(?P<worst>\S+)(?P<fail>  FAIL)?$")


def _grad_rows(out: str) -> list[tuple[str, float, bool]]:
    rows = []
    for line in out.splitlines():
        m = GRAD_ROW.match(line)
        if m:
            rows.append((m.group("check"), float(m.group("err")), bool(m.group("fail"))))
    return rows


def test_gradcheck_on_cpu_passes_with_all_errors_below_1e6(capsys) -> None:
    rc, out, _ = run_cli(capsys, "gradcheck", "--device", "cpu")
    assert rc == 0
    rows = _grad_rows(out)
    names = [r[0] for r in rows]
    assert "softmax_cross_entropy" in names and any(n.startswith("Linear(") for n in names)
    for act in ("relu", "leaky_relu", "sigmoid", "tanh", "swish", "selu"):
        assert act in names
        assert any(n.startswith("MLP[") and f" {act} " in n for n in names)
    assert len(rows) >= 14
    for name, err, fail in rows:
        assert 0 <= err < 1e-6, (name, err)
        assert not fail
    assert f"{len(rows)} of {len(rows)} checks below 1e-06" in out


def test_gradcheck_reports_failures_with_exit_1(capsys) -> None:
    rc, out, _ = run_cli(capsys, "gradcheck", "--device", "cpu", "--tol", "1e-300")
    assert rc == 1
    rows = _grad_rows(out)
    assert rows and all(fail for _, err, fail in rows if err > 0)
    assert re.search(r"\b\d+ of \d+ checks below 1e-300", out)


def test_python_dash_m_xpmlp_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "xpmlp", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: xpmlp")
    for cmd in ("train", "evaluate", "devices", "gradcheck"):
        assert cmd in proc.stdout


def test_ctrl_c_while_the_command_loads_is_one_line_and_130(monkeypatch, capsys) -> None:
    """A KeyboardInterrupt raised while xpmlp.cli and its libraries import: no traceback."""
    import builtins

    from xpmlp import entry

    real_import = builtins.__import__

    def interrupted_import(name, globals=None, locals=None, fromlist=(), level=0):
        if (name, level) == ("cli", 1):
            raise KeyboardInterrupt
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    try:
        rc = entry.main(["--help"])
    except KeyboardInterrupt:  # escaping would stop the whole test session, not fail this test
        pytest.fail("the KeyboardInterrupt escaped the entry point")
    assert rc == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_the_entry_point_runs_the_command_line(capsys) -> None:
    from xpmlp import entry

    with pytest.raises(SystemExit) as info:  # argparse's --help exits, through the entry point unchanged
        entry.main(["--help"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: xpmlp")


def test_importing_xpmlp_loads_no_array_library() -> None:
    """What lets the entry point catch a Ctrl-C early: the package's exports load on first use."""
    code = ("import sys, xpmlp, xpmlp.entry\n"
            "print(sorted(m for m in ('numpy', 'torch', 'sklearn') if m in sys.modules))\n"
            "print(xpmlp.get_backend('cpu').name, 'numpy' in sys.modules, 'MLPClassifier' in dir(xpmlp))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "numpy True True"]


# -- end to end on the real Fashion-MNIST -------------------------------------------------------

@pytest.fixture(scope="module")
def fmnist_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    # The command with plain SGD at lr 0.1 (60 steps) reaches only about 0.67-0.73 test accuracy
    # depending on the seed (a PyTorch autograd replica of the same steps agrees to 1e-15); momentum on
    # standardised inputs reaches about 0.79 in the same 60 steps.
    rc = main(["train", "--dataset", "fashion-mnist", "--subset", "3000", "--val-size", "500", "--epochs", "3",
               "--hidden", "64", "--lr", "0.01", "--optimizer", "momentum", "--preprocess", "standardize",
               "--out", str(out), "--quiet", "--device", "cpu", "--no-download"])
    assert rc == 0
    return out


@needs_fmnist
def test_train_writes_a_complete_run_folder(fmnist_run) -> None:
    out = fmnist_run
    for name in ("config.json", "history.json", "metrics.json", "checkpoint.npz", "loss.png", "accuracy.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("final_val_acc", "best_val_acc", "test_acc", "final_loss", "train_seconds", "samples_per_second",
                "device", "backend"):
        assert key in metrics, key
    assert metrics["test_acc"] > 0.75
    assert 0.75 < metrics["final_val_acc"] <= metrics["best_val_acc"] <= 1.0
    assert metrics["backend"] == "cpu"
    assert metrics["train_seconds"] > 0 and metrics["samples_per_second"] > 0
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["eval"]] == [1, 2, 3]
    # 3000 - 500 validation = 2500 training images: ceil(2500 / 128) = 20 steps an epoch
    assert len(history["iteration_loss"]) == 3 * 20
    # epoch regime: the final loss is the last epoch's mean minibatch loss
    assert metrics["final_loss"] == pytest.approx(sum(history["iteration_loss"][-20:]) / 20, rel=1e-12)
    config = json.loads((out / "config.json").read_text())
    assert config["sizes"] == [784, 64, 10] and config["subset"] == 3000 and config["val_size"] == 500
    tree = ckpt.load(out / "checkpoint.npz")
    assert tree["trainer"]["step"] == 60
    assert tree["prep"]  # the preprocessing statistics travel with the weights
    assert tree["model"]["W1"].shape == (784, 64) and tree["model"]["W1"].dtype == np.float32


def _parse_evaluate(out: str) -> tuple[float, list[tuple[str, float]]]:
    acc = float(re.search(r"accuracy (\d\.\d{4})\s*$", out.splitlines()[0]).group(1))
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["class", "accuracy"])
    table = []
    for line in lines[start + 1:]:
        m = re.match(r"^(.+?)\s+(\d\.\d{4})$", line)
        if m:
            table.append((m.group(1).strip(), float(m.group(2))))
    return acc, table


@needs_fmnist
def test_evaluate_reproduces_the_test_accuracy(fmnist_run, capsys) -> None:
    metrics = json.loads((fmnist_run / "metrics.json").read_text())
    rc, out, err = run_cli(capsys, "evaluate", fmnist_run / "checkpoint.npz", "--dataset", "fashion-mnist",
                           "--device", "cpu", "--no-download")
    assert rc == 0, err
    acc, table = _parse_evaluate(out)
    assert f"{acc:.4f}" == f"{metrics['test_acc']:.4f}"
    assert "10000" in out.splitlines()[0]
    assert [name for name, _ in table] == FMNIST_CLASSES
    # the test set holds 1000 images of each class: the overall accuracy is the mean of the per-class ones
    assert np.mean([a for _, a in table]) == pytest.approx(acc, abs=1e-4)


@needs_fmnist
@pytest.mark.parametrize("spec", [
    pytest.param("strict", marks=pytest.mark.needs_backend("strict")),
    pytest.param("torch", marks=pytest.mark.needs_backend("torch")),
])
def test_evaluate_on_another_backend_agrees(fmnist_run, capsys, spec) -> None:
    metrics = json.loads((fmnist_run / "metrics.json").read_text())
    rc, out, err = run_cli(capsys, "evaluate", fmnist_run / "checkpoint.npz", "--device", spec, "--no-download")
    assert rc == 0, err
    acc, table = _parse_evaluate(out)
    assert len(table) == 10
    # float32 on another library: at most a couple of near-tie predictions of 10000 may flip
    assert abs(acc - metrics["test_acc"]) <= 2e-4


@needs_fmnist
def test_resume_of_a_finished_run_has_nothing_to_do(fmnist_run, capsys) -> None:
    before = ckpt.load(fmnist_run / "checkpoint.npz")
    metrics_before = json.loads((fmnist_run / "metrics.json").read_text())
    rc, out, err = run_cli(capsys, "train", "--resume", fmnist_run / "checkpoint.npz", "--out", fmnist_run,
                           "--device", "cpu")
    assert rc == 0, err
    assert "nothing to do" in out
    after = ckpt.load(fmnist_run / "checkpoint.npz")
    assert after["trainer"]["step"] == before["trainer"]["step"] == 60
    for k, v in before["model"].items():
        assert np.array_equal(after["model"][k], v)
    metrics = json.loads((fmnist_run / "metrics.json").read_text())
    assert metrics["test_acc"] == metrics_before["test_acc"]


@needs_fmnist
def test_resume_without_out_continues_in_the_checkpoint_folder(fmnist_run, capsys, tmp_path, monkeypatch) -> None:
    """``xpmlp train --resume CKPT`` alone must work: the run folder is the checkpoint's."""
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "train", "--resume", fmnist_run / "checkpoint.npz", "--device", "cpu")
    assert rc == 0, err
    assert "nothing to do" in out
    assert ckpt.load(fmnist_run / "checkpoint.npz")["trainer"]["step"] == 60
