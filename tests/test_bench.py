"""Tests for the benchmark (xpmlp/bench/, scripts/bench.py): its output structure, never its timings.

The benchmark runs here in --quick mode on generated data with tiny sizes (512 training samples,
one hidden layer of 32, 2 rounds); ratios and speeds are never asserted.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xpmlp import bench
from xpmlp.backend import backend_unavailable, get_backend, to_numpy
from xpmlp.errors import DataError, InputError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--data", "generated", "--train-size", "512", "--hidden", "32", "--rounds", "2",
        "--device", "cpu", "--warmup-steps", "2"]
ROUNDS = 2
PER_CONTENDER = ("samples_per_second", "seconds_per_epoch", "gflops", "ratio", "test_acc")
MACHINE_KEYS = ("date", "cpu_model", "threads", "versions", "blas", "env", "gpu")


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = bench.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, Path]:
    """One tiny run of every contender, shared by the structure tests below."""
    path = tmp_path_factory.mktemp("bench") / "result.json"
    code, out, _ = run_main([*TINY, "--contenders", "xpmlp,torch,sklearn,gemm", "--json", str(path)])
    return code, out, json.loads(path.read_text()), path


def _available(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_quick_run_prints_a_table_with_a_row_per_contender(quick_run):
    code, out, result, _ = quick_run
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("contender"))
    for column in ("s/epoch", "samples/s", "min-max", "GFLOP/s", "xpmlp speed-up", "test acc"):
        assert column in header
    table = lines[lines.index(header) + 2:]
    for name, label in bench.LABELS.items():
        row = next((line for line in table if line.startswith(label + " ")), None)
        assert row is not None, f"no row for {name}"
        if result["contenders"][name]["status"] != "ok":
            assert result["contenders"][name]["status"] in row
    assert "> 1 means xpmlp is faster" in out
    assert "GEMM rate" in out and "GEMM-only ceiling" in out
    assert "generated" in out.lower()  # the data is said to be generated


def test_quick_run_json_has_the_numbers_per_contender(quick_run):
    _, _, result, _ = quick_run
    assert result["schema"] == bench.SCHEMA
    assert set(result["contenders"]) == set(bench.CONTENDERS)
    assert result["parameters"] == bench.num_parameters([784, 32, 10])
    assert result["flops_per_epoch"] == 6 * result["parameters"] * 512
    assert "6 * parameters * samples" in result["flops_formula"]
    assert result["data"]["generated"] is True and result["data"]["n_train"] == 512
    for name, res in result["contenders"].items():
        for key in PER_CONTENDER:
            assert key in res, (name, key)
        if name in ("torch", "sklearn") and not _available(name):
            assert res["status"] == "not installed"
            continue
        assert res["status"] == "ok", res
        sps = res["samples_per_second"]
        assert {"median", "min", "max"} <= set(sps)
        assert 0 < sps["min"] <= sps["median"] <= sps["max"]
        assert len(sps["all"]) == ROUNDS and res["epochs_trained"] == ROUNDS  # the same work for everyone
        assert res["seconds_per_epoch"] > 0 and res["gflops"] > 0 and isinstance(res["ratio"], float)
        if name == "gemm":
            assert res["test_acc"] is None
        else:
            assert 0.0 <= res["test_acc"] <= 1.0
    assert result["contenders"]["xpmlp"]["ratio"] == pytest.approx(1.0)
    assert result["xpmlp_fraction_of_gemm"] == result["contenders"]["gemm"]["ratio"]
    assert result["contenders"]["xpmlp"]["input_check_seconds"] >= 0


def test_quick_run_reports_the_machine_and_the_gemm_ceiling(quick_run):
    _, out, result, path = quick_run
    machine = result["machine"]
    for key in MACHINE_KEYS:
        assert key in machine
    assert machine["threads"] >= 1
    assert machine["versions"]["numpy"] == np.__version__
    assert {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} <= set(machine["env"])
    assert "numpy" in machine["blas"]
    if _available("threadpoolctl"):
        assert machine["blas"]["numpy"], "threadpoolctl should see NumPy's BLAS"
        assert {"internal_api", "num_threads", "version"} <= set(machine["blas"]["numpy"][0])
    ceiling = result["gemm_ceiling"]["cpu"]
    assert [(s["k"], s["n"]) for s in ceiling["shapes"]] == [(784, 32), (32, 10)]
    assert all(s["gflops"] > 0 for s in ceiling["shapes"]) and ceiling["gflops"] > 0
    assert "CPU:" in out and "BLAS numpy:" in out and "OPENBLAS_CORETYPE" in out
    # written atomically: no temporary file is left next to the result
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_missing_torch_and_sklearn_are_reported_not_installed(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in ("torch", "sklearn"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    path = tmp_path / "r.json"
    code, out, _ = run_main([*TINY, "--rounds", "1", "--contenders", "xpmlp,torch,sklearn", "--json", str(path)])
    assert code == 0
    result = json.loads(path.read_text())
    for name in ("torch", "sklearn"):
        res = result["contenders"][name]
        assert res["status"] == "not installed"
        assert res["samples_per_second"] is None and res["test_acc"] is None and res["ratio"] is None
        row = next(line for line in out.splitlines() if line.startswith(bench.LABELS[name] + " "))
        assert "not installed" in row
    assert result["contenders"]["xpmlp"]["status"] == "ok"
    assert 0.0 <= result["contenders"]["xpmlp"]["test_acc"] <= 1.0
    assert result["machine"]["versions"]["torch"] is None


def test_data_falls_back_to_generated_and_says_so(monkeypatch):
    import xpmlp.data

    def missing(*args, **kwargs):
        raise DataError("Fashion-MNIST not found (test)")

    monkeypatch.setattr(xpmlp.data, "prepare", missing)
    logged: list[str] = []
    cfg = bench.BenchConfig(train_size=300, batch_size=64, quick=True).resolve()
    data = bench.load_data(cfg, log=logged.append)
    assert data.generated and "not found (test)" in data.note and "GENERATED" in data.note
    assert any("GENERATED" in line for line in logged)
    assert data.x_train.shape == (300, 784) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and set(np.unique(data.y_train)) <= set(range(10))
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_profile_lists_the_top_functions_of_an_extra_xpmlp_epoch(tmp_path):
    path = tmp_path / "p.json"
    code, out, _ = run_main([*TINY, "--rounds", "1", "--contenders", "xpmlp", "--profile", "2", "--json", str(path)])
    assert code == 0
    profile = json.loads(path.read_text())["profile"]
    assert len(profile) == 2 and {"function", "calls", "tottime", "cumtime", "share"} <= set(profile[0])
    assert "profile of one extra xpmlp epoch" in out


def test_generated_data_is_seeded_and_learnable():
    a, b = bench.generated_data(200, 50, seed=1), bench.generated_data(200, 50, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    # nearest class mean (estimated on train) classifies the test set well: the clusters are learnable
    means = np.stack([a.x_train[a.y_train == c].mean(0) for c in range(10)])
    pred = np.argmin(((a.x_test[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == a.y_test) > 0.9


@pytest.mark.parametrize("failure", [InputError("prepare was given a bad size (test)"),
                                     DataError("benchmark data has shape (3,); expected (N, 784)")])
def test_data_that_cannot_be_used_stops_the_run_with_one_line(monkeypatch, failure):
    import xpmlp.data

    if isinstance(failure, DataError):  # loads, but in the wrong shape: no fallback, a one-line stop
        def prepare(*args, **kwargs):
            return SimpleNamespace(x_train=np.zeros(3), y_train=np.zeros(3), x_test=np.zeros((2, 784)),
                                   y_test=np.zeros(2), source="wrong shape (test)")
    else:  # anything but missing or corrupt files is not a reason to switch to generated data
        def prepare(*args, **kwargs):
            raise failure

    monkeypatch.setattr(xpmlp.data, "prepare", prepare)
    code, out, err = run_main([*TINY, "--data", "fashion-mnist", "--contenders", "xpmlp"])
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {failure}"]


def test_a_broken_data_call_is_not_turned_into_generated_data(monkeypatch):
    import xpmlp.data

    def wrong_signature(name):
        raise AssertionError("not reached: the call does not bind")

    monkeypatch.setattr(xpmlp.data, "prepare", wrong_signature)
    cfg = bench.BenchConfig(train_size=300, batch_size=64, quick=True).resolve()
    with pytest.raises(TypeError):
        bench.load_data(cfg, log=lambda line: None)


def test_the_data_call_matches_prepare():
    import xpmlp.data

    # the arguments load_data passes (a mismatch would be a TypeError, see the test above)
    inspect.signature(xpmlp.data.prepare).bind("fashion-mnist", val_size=bench.config.VAL_SIZE,
                                               preprocess="scale", download=False)


@pytest.mark.parametrize("spec", ["cpu", "strict", "torch"])
def test_gemm_contender_writes_the_products_into_its_buffers_on_every_backend(spec):
    why = backend_unavailable(spec)
    if why:
        pytest.skip(why)
    cfg = bench.BenchConfig(hidden=[16], batch_size=8, quick=True, data="generated", dtype="float64").resolve()
    data = bench.generated_data(20, 5)
    gemm = bench.GemmContender(cfg, data, get_backend(spec, "float64"))
    gemm.setup()
    gemm._step(gemm.X[:8, ...])
    gemm.sync()
    x, (w0, w1) = data.x_train[:8].astype(np.float64), [to_numpy(w) for w in gemm.W]
    outputs, hidden_grads = gemm.buffers[8]
    z0, z1 = x @ w0, x @ w0 @ w1

    def close(actual, expected):  # float64; BLAS libraries sum in different orders
        np.testing.assert_allclose(to_numpy(actual), expected, rtol=1e-9, atol=1e-12)

    close(outputs[0], z0)
    close(outputs[1], z1)
    close(gemm.dW[1], z0.T @ z1)
    close(hidden_grads[0], z1 @ w1.T)
    close(gemm.dW[0], x.T @ (z1 @ w1.T))
    assert gemm.device == f"{gemm.backend.spec} ({gemm.backend.name})"  # a CPU backend: named as the xpmlp row is


@pytest.mark.parametrize("hidden", [[16], [24, 16, 8]])
def test_gemm_contender_covers_every_layer(hidden):
    cfg = bench.BenchConfig(hidden=hidden, batch_size=32, quick=True, data="generated").resolve()
    data = bench.generated_data(100, 10)
    c = bench.GemmContender(cfg, data)
    c.setup()
    c.warmup()
    c.epoch()  # 3 full batches and one of 4
    sizes = cfg.sizes
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    # forward + dW for every layer, dh for all but the first
    assert c.extra["gemm_flops_per_sample"] == 2 * (3 * sum(a * b for a, b in pairs) - sizes[0] * sizes[1])
    assert [tuple(w.shape) for w in c.dW] == pairs
    assert sorted(c.buffers) == [4, 32]


def test_measure_gemm_rates_covers_the_forward_shapes():
    rates = bench.measure_gemm_rates([784, 64, 10], batch=16, seconds=0.01)
    assert [(s["m"], s["k"], s["n"]) for s in rates["shapes"]] == [(16, 784, 64), (16, 64, 10)]
    assert rates["gflops"] > 0 and rates["dtype"] == "float32" and rates["library"] == "numpy"


def test_num_parameters_of_the_study_network():
    assert bench.num_parameters([784, 500, 500, 10]) == 784 * 500 + 500 + 500 * 500 + 500 + 500 * 10 + 10


def test_bad_arguments_fail_with_a_message(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([*TINY, "--contenders", "xpmlp,tensorflow"])
    assert exc.value.code == 2
    assert "tensorflow" in capsys.readouterr().err
    code, _, err = run_main([*TINY, "--batch-size", "1024", "--contenders", "xpmlp"])
    assert code == 2 and "--batch-size 1024" in err


def test_add_arguments_and_run_are_the_cli_entry_points():
    parser = argparse.ArgumentParser(prog="xpmlp")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("bench")
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)
    args = parser.parse_args(["bench", *TINY])
    assert args.hidden == [32] and args.quick and args.contenders is None and args.json is None
    cfg = bench.config_from_args(args).resolve()
    assert (cfg.rounds, cfg.epochs, cfg.train_size) == (2, 1, 512)
    defaults = bench.config_from_args(parser.parse_args(["bench"])).resolve()
    assert (defaults.hidden, defaults.batch_size, defaults.lr, defaults.dtype) == ([500, 500], 128, 0.1, "float32")
    assert (defaults.rounds, defaults.train_size) == (5, None)


def test_write_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.json"
    bench.write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        bench.write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_script_wrapper_runs(tmp_path):
    path = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *TINY, "--rounds", "1",
                           "--contenders", "xpmlp,gemm", "--json", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "xpmlp speed-up" in proc.stdout
    assert set(json.loads(path.read_text())["contenders"]) == {"xpmlp", "gemm"}


def test_the_package_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "xpmlp.bench", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: xpmlp bench") and "--contenders" in proc.stdout


@pytest.mark.gpu
@pytest.mark.needs_backend("cuda")
def test_quick_run_on_the_gpu(tmp_path):
    path = tmp_path / "g.json"
    argv = [a if a != "cpu" else "cuda" for a in TINY]
    code, out, _ = run_main([*argv, "--rounds", "1", "--json", str(path)])
    assert code == 0, out
    result = json.loads(path.read_text())
    assert result["contenders"]["xpmlp"]["status"] == "ok"
    assert result["contenders"]["gemm"]["device"] == "cupy"
    assert result["machine"]["gpu"] and "gpu" in result["gemm_ceiling"]
