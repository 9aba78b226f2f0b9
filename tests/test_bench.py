"""Tests for the benchmark (xpmlp/bench/, scripts/bench.py): its output structure, never its timings.

The benchmark runs here in --quick mode on generated data with tiny sizes (512 training samples,
one hidden layer of 32, 2 rounds); ratios and speeds are never asserted. Peak memory is measured
(in child processes) by the shared run only; sizes of memory are asserted where an allocation of
a known size is made on purpose.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import copy
import inspect
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xpmlp import bench
from xpmlp.backend import backend_unavailable, get_backend, to_numpy
from xpmlp.errors import DataError, InputError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--data", "generated", "--train-size", "512", "--hidden", "32", "--rounds", "2",
        "--device", "cpu", "--warmup-steps", "2", "--no-memory"]
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
    code, out, _ = run_main([*TINY, "--memory", "--contenders", "xpmlp,torch,sklearn,gemm", "--json", str(path)])
    return code, out, json.loads(path.read_text()), path


def xpmlp_keys() -> set[str]:
    """The xpmlp rows a default run has here: --device cpu, and every other usable fast backend."""
    return {"xpmlp"} | {f"xpmlp:{spec}" for spec in bench.default_xpmlp_devices() if spec != "cpu"}


def gemm_keys() -> set[str]:
    """The GEMM-only rows of a run of --device cpu: NumPy's, and PyTorch's where xpmlp runs on it."""
    return {"gemm"} | ({"gemm:torch"} if "torch" in bench.default_xpmlp_devices() else set())


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
    for column in ("s/epoch", "samples/s", "min-max", "GFLOP/s", "xpmlp speed-up", "test acc", "peak MiB"):
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
    assert set(result["contenders"]) == set(bench.CONTENDERS) | xpmlp_keys() | gemm_keys()
    assert {res["kind"] for res in result["contenders"].values()} == set(bench.CONTENDERS)
    assert result["parameters"] == bench.num_parameters([784, 32, 10])
    assert result["flops_per_epoch"] == 6 * result["parameters"] * 512
    assert "6 * parameters * samples" in result["flops_formula"]
    assert result["data"]["generated"] is True and result["data"]["n_train"] == 512
    for name, res in result["contenders"].items():
        for key in PER_CONTENDER:
            assert key in res, (name, key)
        if res["kind"] in ("torch", "sklearn") and not _available(res["kind"]):
            assert res["status"] == "not installed"
            continue
        assert res["status"] == "ok", res
        sps = res["samples_per_second"]
        assert {"median", "min", "max"} <= set(sps)
        assert 0 < sps["min"] <= sps["median"] <= sps["max"]
        assert len(sps["all"]) == ROUNDS and res["epochs_trained"] == ROUNDS  # the same work for everyone
        assert res["seconds_per_epoch"] > 0 and res["gflops"] > 0 and isinstance(res["ratio"], float)
        if res["kind"] == "gemm":
            assert res["test_acc"] is None
        else:
            assert 0.0 <= res["test_acc"] <= 1.0
        if res["kind"] == "xpmlp":
            assert res["input_check_seconds"] >= 0 and res["fraction_of_gemm"] > 0
    assert result["contenders"]["xpmlp"]["ratio"] == pytest.approx(1.0)
    assert result["xpmlp_fraction_of_gemm"] == result["contenders"]["gemm"]["ratio"]


def test_quick_run_has_xpmlp_on_every_fast_backend_and_names_the_fastest(quick_run):
    _, out, result, _ = quick_run
    rows = {key: res for key, res in result["contenders"].items() if res["kind"] == "xpmlp"}
    assert set(rows) == xpmlp_keys() and not any("strict" in key for key in rows)  # strict: correctness only
    assert list(result["contenders"])[:len(rows)] == list(rows) and list(rows)[0] == "xpmlp"  # xpmlp rows first
    assert [entry["key"] for entry in result["xpmlp_backends"]] == list(rows)
    assert rows["xpmlp"]["device"] == "cpu (numpy)"
    if "xpmlp:torch" in rows:
        assert rows["xpmlp:torch"]["device"] == "torch (torch)" and rows["xpmlp:torch"]["label"] == "xpmlp"
    fastest = result["xpmlp_fastest"]
    rates = {key: res["samples_per_second"]["median"] for key, res in rows.items()}
    assert fastest["key"] == max(rates, key=rates.get) and fastest["samples_per_second"] == rates[fastest["key"]]
    assert set(fastest["speedup_over"]) == set(rows) - {fastest["key"]}
    assert all(ratio >= 1 for ratio in fastest["speedup_over"].values())
    assert f"fastest xpmlp backend here: {fastest['device']}" in out
    lines = out.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("contender"))
    table = lines[header + 2:lines.index("", header)]
    # one row per backend, labelled xpmlp, told apart by the device column
    assert [line.split()[:2] for line in table[:len(rows)]] == [["xpmlp", res["device"].split()[0]]
                                                                  for res in rows.values()]


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
    code, out, _ = run_main([*TINY, "--rounds", "1", "--contenders", "xpmlp,torch,sklearn", "--xpmlp-devices", "none",
                             "--json", str(path)])
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


def test_rounds_pause_between_contenders_of_different_thread_pools(monkeypatch):
    from xpmlp.bench import runner

    events: list[str] = []

    class Fake(bench.Contender):
        kind = "gemm"

        def __init__(self, key: str, pool: str) -> None:
            super().__init__(cfg, data, key)
            self.thread_pool = pool

        def epoch(self) -> None:
            events.append(self.key)

    cfg = bench.BenchConfig(hidden=[8], batch_size=8, quick=True, data="generated", rounds=2).resolve()
    data = bench.generated_data(16, 4)
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: events.append(f"sleep {seconds}"))
    race = runner.Race(cfg, data, lambda line: None)
    for key, pool in (("a", "numpy"), ("b", "numpy"), ("c", "torch"), ("d", "torch"), ("e", "numpy")):
        race.set_up(Fake(key, pool))
    seconds = race.time_rounds()
    pause = f"sleep {runner.SETTLE_SECONDS}"
    assert runner.SETTLE_SECONDS >= 0.2  # OpenBLAS's idle threads spin about 0.1 s
    assert events == ["a", "b", pause, "c", "d", pause, "e",  # no pause within a library, one at each change
                      "a", "b", pause, "c", "d", pause, "e"]  # the next round starts on e's library: none
    assert all(len(times) == 2 for times in seconds.values())


def _swallowing_ctrl_c() -> None:
    """What scikit-learn's fit does with a Ctrl-C: catches it and returns as if done."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here
    except KeyboardInterrupt:
        pass


@pytest.fixture
def default_sigint():
    """SIGINT with Python's default handler for the test, the inherited disposition restored after.

    A shell that starts the suite as a background job (``make test &``) ignores SIGINT, so the
    test cannot assume the default handler is in place when it starts.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_a_contender_swallows_still_stops_the_rounds(default_sigint):
    from xpmlp.bench import runner

    ran: list[str] = []

    class Fake(bench.Contender):
        kind = "sklearn"

        def epoch(self) -> None:
            ran.append(self.key)
            if self.key == "sklearn":
                _swallowing_ctrl_c()

    cfg = bench.BenchConfig(hidden=[8], batch_size=8, quick=True, data="generated", rounds=3).resolve()
    race = runner.Race(cfg, bench.generated_data(16, 4), lambda line: None)
    for key in ("sklearn", "gemm"):
        race.set_up(Fake(cfg, bench.generated_data(16, 4), key))
    with pytest.raises(KeyboardInterrupt):
        race.time_rounds()
    assert ran == ["sklearn"]  # nothing timed after the interrupted epoch
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_an_xpmlp_epoch_cut_short_by_ctrl_c_stops_the_benchmark():
    cfg = bench.BenchConfig(hidden=[8], batch_size=8, quick=True, data="generated").resolve()
    contender = bench.XpmlpContender(cfg, bench.generated_data(64, 8), get_backend("cpu"))
    contender.setup()
    contender.trainer.request_interrupt()  # as the Trainer's own SIGINT handler does
    with pytest.raises(KeyboardInterrupt):
        contender.epoch()
    assert contender.epochs_done == 0


def _lineup_keys(names: list[str], primary: str, others: list[str]) -> dict[str, bench.Contender]:
    cfg = bench.BenchConfig(hidden=[8], batch_size=8, quick=True, data="generated").resolve()
    backends = [get_backend(spec) for spec in [primary, *others]]
    return {c.key: c for c in bench.lineup(cfg, bench.generated_data(16, 4), names, backends[0], backends)}


def test_gemm_only_of_array_api_strict_runs_on_numpy_once():
    rows = _lineup_keys(["xpmlp", "gemm"], "cpu", ["strict"])
    assert set(rows) == {"xpmlp", "xpmlp:strict", "gemm"}  # strict is a check, not a library to race
    assert rows["gemm"].backend.name == "numpy"
    assert rows["xpmlp"].extra["gemm_key"] == rows["xpmlp:strict"].extra["gemm_key"] == "gemm"


def test_gemm_only_runs_on_the_library_of_each_xpmlp_backend_and_of_pytorch():
    why = backend_unavailable("torch")
    if why:
        pytest.skip(why)
    rows = _lineup_keys(["xpmlp", "torch", "gemm"], "cpu", ["torch"])
    assert rows["gemm"].backend.name == "numpy" and rows["gemm:torch"].backend.name == "torch"
    assert rows["xpmlp"].extra["gemm_key"] == "gemm" and rows["xpmlp:torch"].extra["gemm_key"] == "gemm:torch"
    assert rows["torch"].extra["gemm_key"] == "gemm:torch"  # PyTorch nn against PyTorch's own products
    assert rows["gemm:torch"].title == "GEMM-only (torch)"
    rows = _lineup_keys(["xpmlp", "gemm"], "torch", ["cpu"])  # --device torch: its GEMM-only is "gemm"
    assert rows["gemm"].backend.name == "torch" and rows["gemm:cpu"].backend.name == "numpy"
    assert rows["xpmlp"].extra["gemm_key"] == "gemm" and rows["xpmlp:cpu"].extra["gemm_key"] == "gemm:cpu"


def test_each_share_of_the_gemm_ceiling_is_against_the_row_own_library():
    from xpmlp.bench import report

    def row(key: str, median: float, **extra: str) -> dict:
        kind = key.split(":")[0]
        device = "torch (torch)" if key.endswith(":torch") else "cpu (numpy)"
        return {"name": key, "kind": kind, "label": bench.LABELS[kind], "device": device, "status": "ok", "reason": "",
                "samples_per_second": {"median": median}, **extra}

    contenders = {"xpmlp": row("xpmlp", 100.0, gemm_key="gemm"), "xpmlp:torch": row("xpmlp:torch", 60.0,
                  gemm_key="gemm:torch"), "torch": row("torch", 40.0, gemm_key="gemm:torch"),
                  "sklearn": row("sklearn", 30.0), "gemm": row("gemm", 125.0), "gemm:torch": row("gemm:torch", 64.0)}
    report._add_ratios(contenders)
    assert contenders["xpmlp"]["fraction_of_gemm"] == pytest.approx(100 / 125)
    assert contenders["xpmlp:torch"]["fraction_of_gemm"] == pytest.approx(60 / 64)
    assert contenders["torch"]["fraction_of_gemm"] == pytest.approx(40 / 64)
    assert "fraction_of_gemm" not in contenders["sklearn"]
    text = "\n".join(report._outcome_lines({"contenders": contenders, "gemm_ceiling": {}}))
    assert "xpmlp reaches 80% on cpu (numpy), 94% on torch (torch) of the GEMM-only ceiling" in text
    assert "PyTorch reaches 62% of GEMM-only on torch (torch)" in text and "at most 1.60x PyTorch" in text
    contenders["torch"]["samples_per_second"]["median"] = 66.0  # faster than its GEMM-only: no bound claimed
    report._add_ratios(contenders)
    text = "\n".join(report._outcome_lines({"contenders": contenders, "gemm_ceiling": {}}))
    assert "PyTorch reaches 103% of GEMM-only on torch (torch) (no bound" in text and "at most" not in text


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
    assert set(json.loads(path.read_text())["contenders"]) == gemm_keys() | xpmlp_keys()


def test_the_package_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "xpmlp.bench", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: xpmlp bench") and "--contenders" in proc.stdout


def test_quick_run_measures_the_peak_memory_of_every_contender(quick_run):
    _, out, result, _ = quick_run
    for name, res in result["contenders"].items():
        memory = res["memory"]
        if res["status"] != "ok":
            assert memory is None
            continue
        assert memory["status"] == "ok", (name, memory)
        assert memory["method"] in ("vmhwm", "sampled") and memory["device"] is None  # the CPU: no device memory
        assert memory["peak_bytes"] > 0 and memory["epoch_bytes"] >= 0 and memory["baseline_bytes"] > 0
        assert memory["setup_bytes"] <= memory["peak_bytes"] and memory["samples"] == 512
    assert "peak MiB = resident memory" in out and "one epoch's working memory" in out
    header = next(line for line in out.splitlines() if line.startswith("contender"))
    assert "GPU peak MiB" not in header


def test_peak_rss_sees_a_temporary_allocation(monkeypatch):
    size = 64 * 2**20
    for method in ("vmhwm", "sampled"):
        if method == "sampled":  # where /proc/self/clear_refs is not writable
            monkeypatch.setattr(bench.memory, "_reset_hwm", lambda: False)
        before = bench.memory.rss_bytes()
        if before is None:
            pytest.skip("no /proc/self/statm (not Linux)")
        with bench.PeakRss() as peak:
            block = np.ones(size // 4, dtype=np.float32)  # written, so resident
            time.sleep(0.05)
            del block
        assert peak.method == method
        assert peak.peak - before >= 0.9 * size, method


def test_measure_contender_counts_the_data_copy_of_set_up():
    if bench.memory.rss_bytes() is None:
        pytest.skip("no /proc/self/statm (not Linux)")
    cfg = bench.BenchConfig(hidden=[16], batch_size=500, quick=True, data="generated").resolve()
    data = bench.generated_data(20_000, 10)  # 20,000 x 784 float32: 62.7 MB, copied to the "device" by set-up
    memory = bench.measure_contender(bench.GemmContender(cfg, data))
    assert memory["status"] == "ok" and memory["samples"] == 20_000
    assert memory["setup_bytes"] >= 0.8 * data.x_train.nbytes
    assert memory["peak_bytes"] >= memory["setup_bytes"] and memory["epoch_bytes"] >= 0


def test_a_failing_memory_child_is_reported_and_does_not_fail_the_run(monkeypatch, tmp_path):
    monkeypatch.setattr(bench.memory, "CHILD_MODULE", "xpmlp.bench.no_such_module")
    path = tmp_path / "m.json"
    code, out, _ = run_main([*TINY, "--memory", "--rounds", "1", "--contenders", "xpmlp", "--xpmlp-devices", "none",
                             "--json", str(path)])
    assert code == 0
    memory = json.loads(path.read_text())["contenders"]["xpmlp"]["memory"]
    assert memory["status"] == "error" and "no_such_module" in memory["reason"]
    assert "memory of xpmlp not measured: error:" in out


def test_without_memory_the_column_is_empty(tmp_path):
    path = tmp_path / "n.json"
    code, out, _ = run_main([*TINY, "--rounds", "1", "--contenders", "xpmlp", "--xpmlp-devices", "none",
                             "--json", str(path)])
    assert code == 0
    result = json.loads(path.read_text())
    assert result["contenders"]["xpmlp"]["memory"] is None and "peak MiB = " not in out
    assert result["xpmlp_fastest"]["speedup_over"] == {} and "(the only one that ran)" in out


def test_a_gpu_memory_column_appears_when_a_contender_has_device_memory(quick_run):
    _, _, result, _ = quick_run
    result = copy.deepcopy(result)
    result["contenders"]["xpmlp"]["memory"]["device"] = {"library": "cupy", "setup_bytes": 2**20,
                                                          "peak_bytes": 3 * 2**20, "epoch_bytes": 2 * 2**20}
    lines = bench.format_report(result).splitlines()
    header = next(line for line in lines if line.startswith("contender"))
    assert header.rstrip().endswith("GPU peak MiB")
    assert lines[lines.index(header) + 2].rstrip().endswith("  3")  # xpmlp's row, in MiB


@pytest.mark.parametrize(("text", "expected"), [("all", None), ("none", []), ("cpu, torch", ["cpu", "torch"]),
                                                ("STRICT", ["strict"])])
def test_xpmlp_devices_option(text, expected):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert parser.parse_args(["--xpmlp-devices", text]).xpmlp_devices == expected
    assert parser.parse_args([]).xpmlp_devices is None


def test_xpmlp_devices_named_explicitly(tmp_path):
    path = tmp_path / "d.json"
    code, out, _ = run_main([*TINY, "--rounds", "1", "--contenders", "xpmlp", "--xpmlp-devices", "strict,cpu",
                             "--json", str(path)])
    assert code == 0
    contenders = json.loads(path.read_text())["contenders"]
    assert list(contenders) == ["xpmlp", "xpmlp:strict"]  # --device first, each backend once
    assert contenders["xpmlp:strict"]["status"] == "ok"


def test_an_unusable_xpmlp_device_stops_the_run_with_one_line(capsys):
    code, out, err = run_main([*TINY, "--contenders", "xpmlp", "--xpmlp-devices", "strict:no_such_device"])
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "no_such_device" in err
    with pytest.raises(SystemExit) as exc:
        bench.main([*TINY, "--xpmlp-devices", ","])
    assert exc.value.code == 2 and "--xpmlp-devices" in capsys.readouterr().err


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


@pytest.mark.gpu
@pytest.mark.needs_backend("cuda", "torch:cuda")
def test_device_memory_of_the_gpu_contenders(tmp_path):
    path = tmp_path / "gm.json"
    argv = [a if a != "cpu" else "cuda" for a in TINY]
    code, out, _ = run_main([*argv, "--memory", "--rounds", "1", "--contenders", "xpmlp,torch",
                             "--xpmlp-devices", "torch:cuda", "--json", str(path)])
    assert code == 0, out
    contenders = json.loads(path.read_text())["contenders"]
    assert set(contenders) == {"xpmlp", "xpmlp:torch:cuda:0", "torch"}
    for name, res in contenders.items():
        device = res["memory"]["device"]
        assert device["library"] == ("cupy" if name == "xpmlp" else "torch"), name
        assert device["peak_bytes"] >= device["setup_bytes"] > 0, name
    assert "GPU peak MiB" in out


def test_a_busy_machine_is_said(monkeypatch):
    monkeypatch.setattr(bench.machine, "available_cores", lambda: 2)
    monkeypatch.setattr(bench.machine, "load_average", lambda: [3.7, 3.3, 2.4])
    assert "load average was 3.7 on 2 core(s)" in bench.machine.load_note()
    monkeypatch.setattr(bench.machine, "load_average", lambda: [0.4, 0.3, 0.2])
    assert bench.machine.load_note() == ""
    monkeypatch.setattr(bench.machine, "load_average", lambda: None)
    assert bench.machine.load_note() == ""


def test_cupy_memory_on_cuda_1_reads_device_1s_pool(monkeypatch):
    """CuPy's pool answers for the *current* device; the benchmark must ask with its own device current."""
    import types

    from xpmlp.backend import CupyBackend

    current = [0]

    @contextlib.contextmanager
    def device(index):
        before, current[0] = current[0], index
        yield
        current[0] = before

    pool = types.SimpleNamespace(used_bytes=lambda: [100, 7000][current[0]],
                                 total_bytes=lambda: [200, 9000][current[0]])
    cupy = types.ModuleType("cupy")
    cupy.get_default_memory_pool = lambda: pool
    cupy.cuda = types.SimpleNamespace(Device=device)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    backend = CupyBackend.__new__(CupyBackend)  # the attributes context() needs, without a GPU
    backend._cupy, backend.index = cupy, 1
    library, used, peaks = bench.memory.device_counters(backend)
    assert (library, used(), peaks()) == ("cupy", 7000, {"peak_bytes": 9000})
    assert current[0] == 0  # the caller's current device is left as it was
