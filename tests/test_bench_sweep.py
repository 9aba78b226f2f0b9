"""Tests for the cost-growth sweep (xpmlp/bench/sweep.py, sweep_plot.py, scripts/bench_sweep.py).

The sweep runs here in --quick mode on tiny sizes and generated data; its files and their
structure are checked, never its timings.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from xpmlp.bench import default_xpmlp_devices, sweep
from xpmlp.bench.sweep_plot import sweep_figure

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--data", "generated", "--widths", "16", "32", "--batch-sizes", "8", "16", "--train-size", "256"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``sweep.main(argv)``: exit code, stdout, stderr (argparse's SystemExit becomes the code)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = sweep.main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    code, out, _ = run_main([*TINY, "--json", str(folder / "out" / "sweep.json")])
    return code, out, strict_json(folder / "out" / "sweep.json"), folder / "out"


def test_quick_sweep_writes_strict_json_with_a_cell_per_width_and_batch(quick_sweep):
    code, out, result, folder = quick_sweep
    assert code == 0
    assert result["schema"] == sweep.SCHEMA and result["complete"] is True
    assert sorted(path.name for path in folder.iterdir()) == ["sweep.json", "sweep.png"]  # no temp files left
    assert out.startswith(f"wrote {folder / 'sweep.json'} and {folder / 'sweep.png'}")
    assert [(cell["batch_size"], cell["width"]) for cell in result["cells"]] == [(8, 16), (8, 32), (16, 16), (16, 32)]
    assert result["data"]["generated"] is True and result["data"]["n_train"] == 256
    assert result["config"]["dtype"] == "float32" and result["elapsed_seconds"] > 0
    machine = result["machine"]
    assert machine["cpu_model"] and machine["threads"] >= 1 and "numpy" in machine["blas"]


def test_every_cell_has_positive_rates_and_ratios_of_every_contender(quick_sweep):
    _, _, result, _ = quick_sweep
    on_the_cpu = [spec for spec in default_xpmlp_devices() if "cuda" not in spec]  # --device cpu: its hardware
    assert result["xpmlp_backends"] == on_the_cpu and on_the_cpu[0] == "cpu"
    xpmlp = ["xpmlp"] + [f"xpmlp:{spec}" for spec in on_the_cpu[1:]]
    for cell in result["cells"]:
        assert cell["sizes"] == [784, cell["width"], cell["width"], 10]
        assert cell["samples"] == cell["steps"] * cell["batch_size"] <= 256
        gemm = {"xpmlp": "gemm"} | {f"xpmlp:{spec}": f"gemm:{spec}" for spec in on_the_cpu[1:]}  # each its library's
        assert set(cell["contenders"]) == {*xpmlp, "torch", *gemm.values()}
        for name, res in cell["contenders"].items():
            if res["kind"] == "torch" and res["status"] == "not installed":
                continue
            assert res["status"] == "ok", (name, res)
            speed = res["samples_per_second"]
            assert 0 < speed["min"] <= speed["median"] <= speed["max"] and len(speed["all"]) == 2  # 2 rounds
            assert res["test_acc"] is None  # no scoring in a sweep
        for ratios in (cell["ratio_to_torch"], cell["ratio_to_gemm"]):
            assert set(ratios) == set(xpmlp)
            assert all(ratio is None or ratio > 0 for ratio in ratios.values())
        assert all(ratio > 0 for ratio in cell["ratio_to_gemm"].values())
        medians = {name: res["samples_per_second"]["median"] for name, res in cell["contenders"].items()
                   if res["status"] == "ok"}
        for key, ratio in cell["ratio_to_gemm"].items():
            assert ratio == pytest.approx(medians[key] / medians[gemm[key]])


def test_quick_sweep_draws_one_png(quick_sweep):
    _, _, result, folder = quick_sweep
    data = (folder / "sweep.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    fig = sweep_figure(result)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["batch 8", "batch 16", "xpmlp / PyTorch", "xpmlp / GEMM-only"]


def test_steps_follow_the_flop_target_and_the_limits():
    cfg = sweep.SweepConfig(target_gflop=1.0, max_steps=50).resolve()
    # 784-16-16-10: 13,002 parameters; 1e9 / (6 * 13,002 * 8) = 1,602 steps wanted
    assert sweep.steps_for(cfg, 16, 8, 1_000_000) == (50, "max-steps")
    assert sweep.steps_for(cfg, 16, 8, 256) == (32, "data")
    assert sweep.steps_for(cfg, 4096, 4096, 55_000) == (1, "target-gflop")  # one step is already > 1 GFLOP
    cfg = sweep.SweepConfig(target_gflop=40.0, max_steps=500).resolve()
    assert sweep.steps_for(cfg, 256, 128, 55_000) == (round(40e9 / (6 * 269_322 * 128)), "target-gflop")


def test_the_default_grid_and_backends():
    cfg = sweep.SweepConfig().resolve()
    assert (cfg.widths, cfg.batch_sizes) == (list(sweep.WIDTHS), list(sweep.BATCH_SIZES))
    assert (cfg.rounds, cfg.target_gflop, cfg.png) == (3, 40.0, "bench-sweep.png")
    specs = [backend.spec for backend in sweep.sweep_backends(cfg)]
    assert specs[0] == "cpu" and "strict" not in specs
    assert specs == [spec for spec in ("cpu", "torch") if spec in default_xpmlp_devices()]


def test_an_interrupted_sweep_keeps_the_cells_it_measured(monkeypatch, tmp_path):
    real, calls = sweep.run_cell, []

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "run_cell", interrupted)
    path = tmp_path / "s.json"
    with pytest.raises(KeyboardInterrupt):
        sweep.main([*TINY, "--contenders", "xpmlp", "--xpmlp-devices", "cpu", "--json", str(path)])
    result = strict_json(path)
    assert result["complete"] is False and len(result["cells"]) == 1
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv", [
    ["--widths", "0"], ["--widths", "x"], ["--batch-sizes", "-4"], ["--rounds", "0"], ["--dtype", "float16"],
    ["--contenders", "xpmlp,tensorflow"], ["--no-such-flag"], ["--target-gflop", "nan"], ["--lr", "-1"],
    ["--target-gflop", "inf"], ["--device", "tpu"], ["--xpmlp-devices", "strict:no_such_device"],
    ["--batch-sizes", "512"],  # more than the 256 training samples
])
def test_bad_flags_exit_2_with_one_line(argv, tmp_path):
    path = tmp_path / "bad.json"
    code, out, err = run_main([*TINY, *argv, "--json", str(path)])
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "error: " in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    code, _, err = run_main([*TINY, "--json", str(tmp_path)])
    assert code == 2 and err.startswith("error: --json") and "folder" in err
    (tmp_path / "file").write_text("")
    code, _, err = run_main([*TINY, "--json", str(tmp_path / "file" / "under.json")])
    assert code == 2 and err.startswith("error: --json") and len(err.splitlines()) == 1


def test_the_script_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_sweep.py"), *TINY, "--widths", "16",
                           "--batch-sizes", "8", "--contenders", "xpmlp,gemm", "--json", "s.json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len(strict_json(tmp_path / "s.json")["cells"]) == 1
    proc = subprocess.run([sys.executable, "-m", "xpmlp.bench.sweep", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "--widths" in proc.stdout and proc.stderr == ""
