"""``xpmlp bench --estimator``: xpmlp's MLPClassifier against scikit-learn's, its settings and its output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xpmlp.bench import command
from xpmlp.bench import estimator as bench_estimator
from xpmlp.errors import XpmlpError

pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parent.parent


def _parse(*argv: str):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["--estimator", *argv])


def test_defaults_are_the_estimator_benchmark_s_own():
    s = bench_estimator.settings(_parse())
    assert s.networks == [(100,), (256,)] and s.solvers == ["sgd", "adam"]
    assert (s.epochs, s.rounds, s.batch_size, s.train, s.device) == (3, 7, 200, None, "cpu")
    assert (s.lbfgs_iters, s.lbfgs_train, s.dtype) == (100, 10_000, "float32")
    quick = bench_estimator.settings(_parse("--quick"))
    assert (quick.rounds, quick.train) == (3, 10_000)


def test_given_flags_win():
    s = bench_estimator.settings(_parse("--hidden", "64", "32", "--batch-size", "50", "--epochs", "2", "--rounds",
                                        "4", "--train-size", "999", "--device", "strict", "--solvers", "adam",
                                        "--lbfgs-iters", "7", "--dtype", "float64"))
    assert s.networks == [(64, 32)] and s.solvers == ["adam"]
    assert (s.epochs, s.rounds, s.batch_size, s.train, s.device) == (2, 4, 50, 999, "strict")
    assert (s.lbfgs_iters, s.lbfgs_train, s.dtype) == (7, 999, "float64")
    assert bench_estimator.settings(_parse("--solvers", "sgd,adam,lbfgs")).solvers == ["sgd", "adam", "lbfgs"]
    with pytest.raises(XpmlpError, match="newton.*sgd,adam,lbfgs"):
        bench_estimator.settings(_parse("--solvers", "newton"))


@pytest.fixture
def small_data(monkeypatch):
    rng = np.random.default_rng(0)
    centers = 3.0 * rng.normal(size=(3, 20))
    y, yt = rng.integers(0, 3, 300), rng.integers(0, 3, 100)
    X = (centers[y] + 0.3 * rng.normal(size=(300, 20))).astype(np.float32)
    Xt = (centers[yt] + 0.3 * rng.normal(size=(100, 20))).astype(np.float32)
    asked = []

    def load(train, dtype="float32"):
        asked.append((train, dtype))
        return X.astype(dtype), y, Xt.astype(dtype), yt

    monkeypatch.setattr(bench_estimator, "load", load)
    return asked


def test_a_run_prints_and_writes_one_row_per_network_solver_and_contender(small_data, tmp_path, capsys):
    out = tmp_path / "est.json"
    rc = command.main(["--estimator", "--hidden", "8", "--epochs", "3", "--rounds", "2", "--batch-size", "20",
                       "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "| 20-8-10 | sgd | xpmlp |" in text and "| 20-8-10 | adam | scikit-learn |" in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["solver"], r["contender"]) for r in rows] == [("sgd", "xpmlp"), ("sgd", "scikit-learn"),
                                                            ("adam", "xpmlp"), ("adam", "scikit-learn")]
    for r in rows:
        assert r["seconds"] > 0 and r["min"] <= r["seconds"] <= r["max"] and 0.0 <= r["test_acc"] <= 1.0
        assert r["samples_per_s"] == pytest.approx(3 * 300 / r["seconds"])
    # separable blobs: both estimators learn them, to the same accuracy as the same parameters promise
    assert all(r["test_acc"] > 0.9 for r in rows)
    assert result["settings"]["networks"] == [[8]] and result["machine"]["cores"] >= 1


def test_an_lbfgs_run_reports_the_work_each_contender_did(small_data, tmp_path, capsys):
    out = tmp_path / "lbfgs.json"
    rc = command.main(["--estimator", "--solvers", "lbfgs", "--hidden", "8", "--lbfgs-iters", "5", "--rounds", "2",
                       "--train-size", "200", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and small_data == [(200, "float32")]
    assert "| 20-8-10 | lbfgs | xpmlp |" in text and "lbfgs: 200 training images (full batch), 5 iterations" in text
    rows = json.loads(out.read_text())["rows"]
    assert [(r["solver"], r["contender"], r["train"]) for r in rows] == [("lbfgs", "xpmlp", 200),
                                                                        ("lbfgs", "scikit-learn", 200)]
    ours, theirs = rows
    # tol=0 and five iterations: both take exactly five, each needing at least one loss evaluation
    assert ours["n_iter"] == theirs["n_iter"] == 5
    for r in rows:
        assert r["n_fun"] >= r["n_iter"] and 0.0 < r["loss"] < 10.0
        assert r["samples_per_s"] == pytest.approx(r["n_fun"] * 200 / r["seconds"])
    assert ours["loss_ratio"] == pytest.approx(ours["loss"] / theirs["loss"])
    # the same start and the same algorithm: the same loss after the same iterations, to float32's noise
    assert ours["loss_ratio"] == pytest.approx(1.0, rel=0.05)


def test_stochastic_and_lbfgs_rows_train_on_their_own_sizes(small_data, tmp_path):
    out = tmp_path / "both.json"
    rc = command.main(["--estimator", "--solvers", "sgd,lbfgs", "--hidden", "4", "--epochs", "1", "--rounds", "1",
                       "--lbfgs-iters", "2", "--dtype", "float64", "--json", str(out)])
    assert rc == 0 and small_data == [(None, "float64")]  # sgd wants every image, so all are loaded
    rows = json.loads(out.read_text())["rows"]
    assert [(r["solver"], r["n_fun"] is None) for r in rows] == [("sgd", True), ("sgd", True),
                                                                 ("lbfgs", False), ("lbfgs", False)]
    assert all(r["train"] == 300 for r in rows)


def test_an_unusable_device_stops_before_the_data_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(bench_estimator, "load", lambda *args: pytest.fail("the data was loaded"))
    rc = command.main(["--estimator", "--device", "nosuchdevice"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "nosuchdevice" in err[0]


def test_the_script_is_the_estimator_benchmark():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_estimator.py"), "--solvers", "newton"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown solver(s) newton for --estimator" in proc.stderr


def test_a_fit_that_swallows_ctrl_c_is_not_timed_as_done():
    class Estimator:  # scikit-learn's and xpmlp's MLPClassifier catch KeyboardInterrupt and return
        def fit(self, X, y):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
            except KeyboardInterrupt:
                pass

    with pytest.raises(KeyboardInterrupt):
        bench_estimator.timed_fit(Estimator(), np.zeros((2, 2)), np.zeros(2))

