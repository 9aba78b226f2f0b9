"""Tests for ``xpmlp parity``: the same seeded training on each backend, compared with NumPy.

The CLI runs in-process through ``xpmlp.cli.main`` (one subprocess checks ``python -m xpmlp``).
The values in parity.json are asserted, not just the printed text: array-api-strict wraps NumPy,
so it must agree exactly; PyTorch (when installed) within its tolerance. A perturbed backend must
make the exit status 1 and the JSON name the row; bad input is one ``error:`` line and exit 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from xpmlp import parity
from xpmlp.backend import StrictBackend, backend_unavailable
from xpmlp.cli import main

STEPS = 30


def no_constants(name: str) -> None:
    raise AssertionError(f"parity.json holds {name}; JSON must never hold NaN or Infinity")


def load(path: Path) -> dict:
    return json.loads(path.read_text(), parse_constant=no_constants)


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``xpmlp ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def needs(spec: str) -> None:
    why = backend_unavailable(spec)
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One ``xpmlp parity --device cpu strict [torch] --steps 30`` run shared by the row tests."""
    specs = ["cpu", "strict"] + ([] if backend_unavailable("torch") else ["torch"])
    out = tmp_path_factory.mktemp("parity") / "parity.json"
    rc, stdout, stderr = run_cli("parity", "--device", *specs, "--steps", STEPS, "--out", out)
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "json": load(out), "specs": specs, "path": out}


def row(result: dict, device: str, dtype: str) -> dict:
    rows = [r for r in result["rows"] if (r["device"], r["dtype"]) == (device, dtype)]
    assert len(rows) == 1, result["rows"]
    return rows[0]


def test_cli_passes_and_writes_one_row_per_backend_and_dtype(cli_run):
    assert cli_run["rc"] == 0, cli_run["stdout"] + cli_run["stderr"]
    assert cli_run["stderr"] == ""
    result = cli_run["json"]
    assert result["ok"] is True and result["failed"] == []
    assert {(r["device"], r["dtype"]) for r in result["rows"]} == {
        (s, d) for s in cli_run["specs"] for d in ("float64", "float32")}
    assert result["settings"]["steps"] == STEPS and result["settings"]["sizes"] == [64, 32, 32, 10]
    for d in ("float64", "float32"):
        assert result["reference"][d]["final_loss"] > 0
    for r in result["rows"]:
        assert r["tolerance"] == parity.TOLERANCES[r["dtype"]][False]
        assert f"{r['device']:<7} {r['dtype']}" in cli_run["stdout"]
    assert f"all {len(result['rows'])} rows within tolerance" in cli_run["stdout"]
    assert not [p for p in cli_run["path"].parent.iterdir() if p.name != "parity.json"]  # no temp file left


@pytest.mark.parametrize("device", ["cpu", "strict"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_wrappers_agree_exactly(cli_run, device, dtype):
    """A second NumPy run and array-api-strict (which wraps NumPy) give NumPy's numbers bit for bit."""
    r = row(cli_run["json"], device, dtype)
    assert r["max_abs_dw"] <= 1e-12 and r["max_rel_dw"] <= 1e-12
    assert r["max_abs_dloss"] <= 1e-12
    assert r["agreement"] == 1.0 and r["ok"] is True


@pytest.mark.parametrize("dtype, bound", [("float64", 1e-12), ("float32", 1e-5)])
def test_torch_agrees_within_tolerance(cli_run, dtype, bound):
    needs("torch")
    r = row(cli_run["json"], "torch", dtype)
    assert r["max_rel_dw"] <= bound and r["max_rel_dloss"] <= bound
    assert r["max_abs_dw"] <= bound
    assert r["agreement"] >= 0.99 and r["ok"] is True


def perturb_strict(monkeypatch, **changes):
    """Train array-api-strict with other settings than NumPy: a backend that computes wrongly."""
    train = parity.train_trace

    def wrapped(backend, data, cfg):
        if backend.spec == "strict":
            cfg = dataclasses.replace(cfg, **changes)
        return train(backend, data, cfg)

    monkeypatch.setattr(parity, "train_trace", wrapped)


def test_breach_exits_1_and_names_the_row(monkeypatch, tmp_path):
    perturb_strict(monkeypatch, lr=0.1 * (1 + 1e-6))  # far past 1e-10 in float64, well within 1e-4 in float32
    out = tmp_path / "parity.json"
    rc, stdout, stderr = run_cli("parity", "--device", "cpu", "strict", "--steps", STEPS, "--out", out)
    assert rc == 1, stdout + stderr
    result = load(out)
    assert result["ok"] is False and result["failed"] == ["strict/float64"]
    bad = row(result, "strict", "float64")
    assert bad["ok"] is False and bad["max_rel_dw"] > bad["tolerance"]
    assert row(result, "strict", "float32")["ok"] is True
    assert row(result, "cpu", "float64")["ok"] is True
    assert "1 of 4 rows past tolerance: strict/float64" in stdout
    assert [line for line in stdout.splitlines() if line.endswith("FAIL")] == [
        line for line in stdout.splitlines() if line.startswith("strict  float64")]


def test_tolerance_is_what_decides(monkeypatch, tmp_path):
    """With a zero tolerance only exact agreement passes: NumPy's own rerun still does."""
    monkeypatch.setattr(parity, "TOLERANCES", {"float64": {False: 0.0, True: 0.0}, "float32": {False: 0.0, True: 0.0}})
    perturb_strict(monkeypatch, lr=0.1 * (1 + 1e-6))
    rc, _, _ = run_cli("parity", "--device", "cpu", "strict", "--steps", 5, "--out", tmp_path / "p.json")
    result = load(tmp_path / "p.json")
    assert rc == 1 and result["failed"] == ["strict/float64", "strict/float32"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverged_backend_writes_null_not_nan(monkeypatch, tmp_path):
    perturb_strict(monkeypatch, lr=1e30)
    rc, stdout, _ = run_cli("parity", "--device", "strict", "--dtype", "float32", "--steps", 5,
                            "--out", tmp_path / "p.json")
    result = load(tmp_path / "p.json")  # parse_constant raises on NaN/Infinity
    r = row(result, "strict", "float32")
    assert rc == 1 and r["ok"] is False
    assert None in (r["max_abs_dw"], r["max_rel_dw"], r["max_abs_dloss"], r["max_rel_dloss"])
    assert "nan" in stdout


@pytest.mark.parametrize("argv, words", [
    (["--steps", "0"], ["--steps", "positive"]),
    (["--steps", "many"], ["--steps", "integer"]),
    (["--batch-size", "-3"], ["--batch-size"]),
    (["--seed", "-1"], ["--seed"]),
    (["--device", "nosuch"], ["nosuch", "cpu"]),
    (["--device"], ["--device"]),
    (["--dtype", "float16"], ["float16", "float64"]),
    (["--dtype"], ["--dtype"]),
    (["--sizes", "64", "1"], ["--sizes"]),
    (["--sizes", "64"], ["--sizes"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, words):
    out = tmp_path / "p.json"
    rc, stdout, stderr = run_cli("parity", *argv, "--out", out)
    assert rc == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for w in words:
        assert w in lines[0]
    assert not any(tmp_path.iterdir()), "a bad input must fail before any file is written"


def test_unwritable_out_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, stdout, stderr = run_cli("parity", "--device", "strict", "--out", blocker / "parity.json")
    assert rc == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "--out" in stderr


def test_unusable_gpu_is_one_line():
    why = backend_unavailable("cuda")
    if not why:
        pytest.skip("a CUDA GPU is usable here")
    rc, _, stderr = run_cli("parity", "--device", "cuda")
    assert rc == 2 and len(stderr.strip().splitlines()) == 1 and "cuda" in stderr


def test_python_m_xpmlp_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xpmlp", "parity", "--steps", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --steps 0 must be a positive integer"]
    assert not any(tmp_path.iterdir())


def test_folder_out_gets_parity_json(tmp_path):
    rc, stdout, _ = run_cli("parity", "--device", "strict", "--dtype", "float64", "--steps", 3, "--out", tmp_path)
    assert rc == 0 and (tmp_path / "parity.json").is_file()
    assert f"wrote {tmp_path / 'parity.json'}" in stdout


def test_losses_read_once_per_window_not_per_step(monkeypatch):
    """Host reads from the device do not grow with the steps: one per window of losses."""
    reads = []
    host_array = StrictBackend.host_array.__func__
    monkeypatch.setattr(StrictBackend, "host_array", classmethod(lambda cls, a: reads.append(1) or host_array(cls, a)))
    counts = {}
    for steps in (parity.WINDOW // 10, parity.WINDOW * 2 + 1):
        reads.clear()
        result = parity.run_parity(["strict"], ["float64"], steps)
        assert result["ok"]
        counts[steps] = len(reads)
    assert counts[parity.WINDOW * 2 + 1] == counts[parity.WINDOW // 10] + 2  # 3 windows instead of 1


def test_api_defaults_and_table():
    result = parity.run_parity(["numpy", "cpu", "strict"], ["float32", "float32"], 4, batch_size=16, sizes=[64, 8, 3])
    assert [(r["device"], r["dtype"]) for r in result["rows"]] == [("cpu", "float32"), ("strict", "float32")]
    assert result["settings"]["sizes"] == [64, 8, 3]
    table = parity.format_table(result)
    assert table.splitlines()[1].split() == ["device", "dtype", "max|dW|", "rel", "dW", "max|dloss|", "rel",
                                             "dloss", "agree", "tol", "result"]
    assert table.isascii()


def test_parity_trains_through_the_trainers_fused_step(monkeypatch):
    """The Trainer fuses SGD's update into the weight-gradient GEMM by default: parity must check that path."""
    import numpy as np

    from xpmlp.backend import get_backend
    from xpmlp.model import MLP

    calls = []
    fused_step = MLP.fused_step
    monkeypatch.setattr(MLP, "fused_step", lambda self, *a, **k: calls.append(1) or fused_step(self, *a, **k))
    monkeypatch.setattr(MLP, "loss", lambda *a, **k: pytest.fail("parity took model.loss + opt.step"))
    cfg = parity.ParitySettings(steps=3, samples=256, test_samples=32)
    trace = parity.train_trace(get_backend("cpu", "float64"), parity.make_data(cfg), cfg)
    assert len(calls) == 3 and np.all(np.isfinite(trace.losses))
