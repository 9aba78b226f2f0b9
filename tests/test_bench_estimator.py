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
    quick = bench_estimator.settings(_parse("--quick"))
    assert (quick.rounds, quick.train) == (3, 10_000)


def test_given_flags_win():
    s = bench_estimator.settings(_parse("--hidden", "64", "32", "--batch-size", "50", "--epochs", "2", "--rounds",
                                        "4", "--train-size", "999", "--device", "strict", "--solvers", "adam"))
    assert s.networks == [(64, 32)] and s.solvers == ["adam"]
    assert (s.epochs, s.rounds, s.batch_size, s.train, s.device) == (2, 4, 50, 999, "strict")
    with pytest.raises(XpmlpError, match="lbfgs"):
        bench_estimator.settings(_parse("--solvers", "lbfgs"))


@pytest.fixture
def small_data(monkeypatch):
    rng = np.random.default_rng(0)
    centers = 3.0 * rng.normal(size=(3, 20))
    y, yt = rng.integers(0, 3, 300), rng.integers(0, 3, 100)
    X = (centers[y] + 0.3 * rng.normal(size=(300, 20))).astype(np.float32)
    Xt = (centers[yt] + 0.3 * rng.normal(size=(100, 20))).astype(np.float32)
    monkeypatch.setattr(bench_estimator, "load", lambda train: (X, y, Xt, yt))


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


def test_an_unusable_device_stops_before_the_data_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(bench_estimator, "load", lambda train: pytest.fail("the data was loaded"))
    rc = command.main(["--estimator", "--device", "nosuchdevice"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "nosuchdevice" in err[0]


def test_the_script_is_the_estimator_benchmark():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_estimator.py"), "--solvers", "lbfgs"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown solver(s) lbfgs for --estimator" in proc.stderr


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

