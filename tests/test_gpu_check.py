"""scripts/gpu_check.sh on a machine without a GPU, the logic of its no-sync detectors and judges.

The script is run with ``CUDA_VISIBLE_DEVICES=`` and ``GPU_CHECK_REQUIRE_GPU=no``: whatever the
machine has, every GPU step must be skipped with its reason and the run must pass, so CI never
fails for want of a GPU. The detectors (scripts/gpu_check_workers.py) are tested on fake CuPy and
PyTorch modules; the judges of the benchmarks on output written as the real commands write it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.py"
GPU_STEPS = ("pytest -m gpu", "gradcheck cuda", "gradcheck torch:cuda", "parity", "nosync cuda",
             "nosync torch:cuda", "first-step cuda", "first-step torch:cuda", "train cuda", "bench cuda b128",
             "bench cuda b4096", "fused cuda", "fused torch:cuda", "estimator cuda")


def _load() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gc = _load()
gw = gc.workers  # scripts/gpu_check_workers.py, imported by gpu_check
needs_fmnist = pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                                  reason="the real Fashion-MNIST is not in /usr/share/datasets/fashion-mnist")


def _no_gpu_env(out: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), CUDA_VISIBLE_DEVICES="", GPU_CHECK_REQUIRE_GPU="no")
    env.pop("GPU_CHECK_WHEELS", None)
    return env


def _strict_json(path: Path) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


# ------------------------------------------------------------------------------------------------
# the whole script, CPU only
# ------------------------------------------------------------------------------------------------

def test_script_without_a_gpu_skips_every_gpu_step_and_passes(tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], cwd=tmp_path, env=_no_gpu_env(out),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 120
    report = _strict_json(out / "gpu-check.json")
    assert report["schema"] == gc.SCHEMA and report["finished"] is True and report["require_gpu"] is False
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["devices"]["status"] == "passed" and "cpu usable" in steps["devices"]["detail"]
    assert steps["probe"]["status"] == "passed"
    for name in GPU_STEPS:
        assert steps[name]["status"] == "skipped", steps[name]
        assert "no usable CUDA GPU through" in steps[name]["detail"], steps[name]
    assert "CuPy" in steps["gradcheck cuda"]["detail"] and "PyTorch" in steps["gradcheck torch:cuda"]["detail"]
    assert steps["evaluate on cpu"]["status"] == "skipped"
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] >= len(GPU_STEPS)
    assert "skip: gradcheck cuda: no usable CUDA GPU through CuPy" in proc.stdout
    assert "0 failed" in proc.stdout.splitlines()[-1]  # the summary table closes the output
    assert (out / "logs" / "devices.log").exists()
    with tarfile.open(out / "gpu-check-results.tar.gz") as tar:
        assert {"gpu-check/gpu-check.json", "gpu-check/logs/devices.log"} <= set(tar.getnames())


def test_a_required_gpu_turns_skips_into_failures(tmp_path):
    env = _no_gpu_env(tmp_path)
    proc = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(tmp_path), "--require-gpu", "yes",
                           "--only", "gradcheck"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    steps = {s["step"]: s for s in _strict_json(tmp_path / "gpu-check.json")["steps"]}
    assert set(steps) == {"probe", "gradcheck cuda", "gradcheck torch:cuda"}
    assert steps["gradcheck cuda"]["status"] == "failed"
    assert steps["gradcheck cuda"]["detail"].startswith("GPU required but not run: no usable CUDA GPU through CuPy")


def test_auto_requires_a_gpu_only_where_nvidia_smi_lists_one_and_never_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(gc, "gpu_listed", lambda: True)
    assert gc.resolve_require_gpu("auto") is True
    assert gc.resolve_require_gpu("no") is False
    monkeypatch.setenv("CI", "true")
    assert gc.resolve_require_gpu("auto") is False
    assert gc.resolve_require_gpu("yes") is True
    monkeypatch.delenv("CI")
    monkeypatch.setattr(gc, "gpu_listed", lambda: False)
    assert gc.resolve_require_gpu("auto") is False


def test_bad_budget_is_one_line_and_exit_2(tmp_path, capsys):
    assert gc.main(["run", "--out", str(tmp_path), "--budget", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --budget must be a positive number of seconds"


# ------------------------------------------------------------------------------------------------
# the record and the runner
# ------------------------------------------------------------------------------------------------

def test_report_is_rewritten_after_each_step_without_nan(tmp_path):
    report = gc.Report(tmp_path / "gpu-check.json", {"schema": gc.SCHEMA})
    report.add(gc.Step("one", "passed", 1.0, "fine", extra={"ratio": float("nan"), "rates": [float("inf"), 2.0]}))
    data = _strict_json(tmp_path / "gpu-check.json")
    assert data["finished"] is False and data["summary"] == {"passed": 1, "failed": 0, "skipped": 0}
    assert data["steps"][0]["ratio"] is None and data["steps"][0]["rates"] == [None, 2.0]
    report.add(gc.Step("two", "failed", detail="broken"))
    assert [s["step"] for s in _strict_json(tmp_path / "gpu-check.json")["steps"]] == ["one", "two"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert "1 passed, 1 failed, 0 skipped" in gc.summary_table(report)


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
           "print('started', flush=True); time.sleep(60)"
    t0 = time.monotonic()
    res = gc.run_command([sys.executable, "-c", code], timeout=2, log=tmp_path / "x.log")
    assert res.rc is None and time.monotonic() - t0 < 30
    assert "started" in res.output and "[exit timeout]" in (tmp_path / "x.log").read_text()


def _context(tmp_path: Path, budget: float = 100.0, require: bool = False) -> Any:
    report = gc.Report(tmp_path / "gpu-check.json", {})
    return gc.Context(tmp_path, report, time.monotonic() + budget, require, set(gc.STEPS))


def test_a_step_past_the_budget_is_skipped_and_a_broken_judge_fails(tmp_path):
    ctx = _context(tmp_path, budget=5)
    step = gc.run_step(ctx, "late", [sys.executable, "-c", "pass"], 60, gc.exit_ok)
    assert step.status == "skipped" and "out of the time budget" in step.detail

    def broken(res: Any) -> Any:
        raise KeyError("contenders")
    ctx = _context(tmp_path, budget=100)
    step = gc.run_step(ctx, "odd", [sys.executable, "-c", "print('hi')"], 60, broken)
    assert step.status == "failed" and "could not read the result" in step.detail
    assert step.extra["exit"] == 0 and Path(step.extra["log"]).exists()


def test_skip_reasons_name_the_library_and_keep_xpmlps_reason():
    why = ("device 'cuda' is not usable: CuPy is not installed (ModuleNotFoundError); pip install "
           "'xpmlp[cuda12]'; or use --device cpu")
    line = gc.skip_reason("cuda", why)
    assert line == "no usable CUDA GPU through CuPy: CuPy is not installed (ModuleNotFoundError); pip install " \
                   "'xpmlp[cuda12]'"
    assert gc.skip_reason("torch:cuda", "PyTorch was built without CUDA").endswith("PyTorch: PyTorch was built "
                                                                                   "without CUDA")


def test_worker_answers_are_read_from_the_last_json_line():
    res = gc.Result(0, 'noise\n{"not": "this"}\nmore noise\n{"ok": true, "detail": "fine"}\n', 1.0)
    ok, detail, extra = gc.worker_judge(res)
    assert ok and detail == "fine" and extra["result"]["ok"] is True
    ok, detail, _ = gc.worker_judge(gc.Result(1, "Traceback ...\nSegmentation fault\n", 1.0))
    assert not ok and detail == "exit 1: Segmentation fault"


def test_later_groups_keep_their_reserve_only_with_a_usable_gpu(tmp_path):
    ctx = _context(tmp_path, budget=300)
    ctx.group = "pytest"
    assert ctx.reserved() == 0  # nothing probed: no GPU step will run
    ctx.unusable = {"cuda": "", "torch:cuda": "no torch"}
    assert ctx.reserved() == sum(gc.RESERVE.values())
    left = ctx.remaining() - 2
    assert gc.timeout_for(ctx, 1000) == pytest.approx(left - sum(gc.RESERVE.values()), abs=1)
    ctx.only -= {"bench"}
    assert ctx.reserved() == sum(gc.RESERVE.values()) - gc.RESERVE["bench"]
    ctx.group = "fused"
    assert ctx.reserved() == gc.RESERVE["estimator"]
    ctx.group = "estimator"
    assert ctx.reserved() == 0 and gc.timeout_for(ctx, 60, reserve=1000) == gc.MIN_STEP_SECONDS
    assert gc.timeout_for(_context(tmp_path, budget=10), 60) is None


def _captured_steps(monkeypatch, tmp_path, unusable):
    ctx = _context(tmp_path)
    ctx.unusable = unusable
    calls = []
    monkeypatch.setattr(gc, "run_step", lambda ctx, name, cmd, limit, judge, **kw: calls.append((name, cmd, kw)))
    for name in ("pytest", "bench", "fused", "estimator"):
        gc.STEP_FUNCTIONS[name](ctx)
    return ctx, {name: (cmd, kw) for name, cmd, kw in calls}


def test_gpu_steps_ask_for_the_gpu_tests_and_xpmlp_on_every_usable_gpu_backend(monkeypatch, tmp_path):
    _, calls = _captured_steps(monkeypatch, tmp_path, {"cuda": "", "torch:cuda": ""})
    cmd, _ = calls["pytest -m gpu"]
    assert cmd[1:6] == ["-m", "pytest", "tests", "-m", "gpu"]
    cmd, kw = calls["bench cuda b128"]
    assert cmd[cmd.index("--xpmlp-devices") + 1] == "cuda,torch:cuda" and kw["reserve"] > 0
    assert calls["bench cuda b4096"][1]["reserve"] == 0
    cmd, kw = calls["fused cuda"]
    assert cmd[1].endswith("bench_variants.py") and cmd[2:] == ["fused", "--device", "cuda", "--rounds", "2"]
    assert kw["reserve"] > 0 and calls["fused torch:cuda"][1]["reserve"] == 0
    cmd, _ = calls["estimator cuda"]
    assert cmd[1].endswith("gpu_check.py") and cmd[2:] == ["estimator", "cuda"]
    ctx, calls = _captured_steps(monkeypatch, tmp_path, {"cuda": "", "torch:cuda": "PyTorch is not installed"})
    cmd, _ = calls["bench cuda b4096"]
    assert cmd[cmd.index("--xpmlp-devices") + 1] == "cuda" and "fused torch:cuda" not in calls
    fused = {s.step: s for s in ctx.report.steps}["fused torch:cuda"]
    assert fused.status == "skipped" and "PyTorch is not installed" in fused.detail


def _contender(key: str, label: str, rate: float | None, device_mib: float | None = None) -> dict[str, Any]:
    memory = {"status": "ok", "method": "vmhwm", "peak_bytes": 300 * 2**20, "setup_bytes": 200 * 2**20,
              "epoch_bytes": 100 * 2**20, "device": None}
    if device_mib is not None:
        memory["device"] = {"library": "cupy", "setup_bytes": 0, "peak_bytes": device_mib * 2**20,
                            "epoch_bytes": device_mib * 2**20}
    status = "ok" if rate else "error"
    return {"name": key, "kind": key.split(":", 1)[0], "label": label, "device": "cuda:0", "status": status,
            "reason": "" if rate else "CUDA error: out of memory", "memory": memory if rate else None,
            "samples_per_second": {"median": rate} if rate else None, "ratio": None}


def _bench(tmp_path: Path, rates: dict[str, float | None]) -> Path:
    labels = {"xpmlp": "xpmlp", "xpmlp:torch:cuda:0": "xpmlp", "torch": "PyTorch", "gemm": "GEMM only"}
    contenders = {key: _contender(key, labels[key], rate, 64.0) for key, rate in rates.items()}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"schema": "xpmlp-bench/1", "contenders": contenders}))
    return path


def test_bench_judge_reads_rows_by_key_and_records_the_targets(tmp_path):
    path = _bench(tmp_path, {"xpmlp": 90_000.0, "xpmlp:torch:cuda:0": 50_000.0, "torch": 100_000.0, "gemm": 400_000.0})
    ok, detail, extra = gc.bench_judge(path, 128)(gc.Result(0, "", 1.0))
    rows = extra["rows"]
    assert ok and set(rows) == {"xpmlp", "xpmlp:torch:cuda:0", "torch", "gemm"}
    assert rows["xpmlp"]["ratio_vs_pytorch_cuda"] == pytest.approx(0.9)
    assert rows["xpmlp:torch:cuda:0"]["ratio_vs_pytorch_cuda"] == pytest.approx(0.5)
    assert rows["xpmlp:torch:cuda:0"]["samples_per_second"] == 50_000.0
    assert rows["torch"]["peak_mib"] == pytest.approx(300) and rows["torch"]["gpu_peak_mib"] == pytest.approx(64)
    assert extra["targets"]["xpmlp on CuPy"] == {"min_ratio": 0.8, "ratio": pytest.approx(0.9), "met": True}
    assert extra["targets"]["fused path"]["met"] is False
    assert detail.startswith("xpmlp on CuPy 0.90x PyTorch CUDA; targets: xpmlp on CuPy >= 0.80x: met, "
                             "fused path >= 1.00x: MISSED; ")
    assert "xpmlp cuda:0 90,000/s 0.90x GPU 64 MiB" in detail
    ok, _, extra = gc.bench_judge(path, 4096)(gc.Result(0, "", 1.0))
    assert ok and extra["targets"] == {"xpmlp on CuPy": {"min_ratio": 0.95, "ratio": pytest.approx(0.9), "met": False}}


def test_bench_judge_fails_when_an_xpmlp_row_did_not_run(tmp_path):
    path = _bench(tmp_path, {"xpmlp": 90_000.0, "xpmlp:torch:cuda:0": None, "torch": None})
    ok, detail, extra = gc.bench_judge(path, 128)(gc.Result(0, "", 1.0))
    assert not ok and detail.startswith("xpmlp:torch:cuda:0 error: CUDA error: out of memory")
    assert extra["targets"]["xpmlp on CuPy"]["met"] is None and "not measured" in detail
    ok, detail, _ = gc.bench_judge(tmp_path / "absent.json", 128)(gc.Result(1, "DeviceError: no GPU\n", 1.0))
    assert not ok and detail == "exit 1: DeviceError: no GPU"


@pytest.mark.parametrize("device,cpu,ok", [(0.8601, 0.86, True), (0.87, 0.86, True), (0.8711, 0.86, False),
                                           (0.1, 0.86, False), (float("nan"), 0.86, False)])
def test_the_estimator_step_judges_the_device_fit_against_xpmlps_own_cpu_fit(device, cpu, ok):
    got, words = gw.judge_estimator(device, cpu)
    assert got is ok and f"vs {cpu:.4f} on the CPU" in words and "allowed 0.01" in words


@needs_fmnist
def test_the_estimator_worker_fits_on_the_devices_arrays_and_matches_the_cpu_fit():
    answer = gw.worker_estimator("strict", train=2000, epochs=2)
    assert answer["ok"] and answer["fitted_on"] == "strict"
    assert abs(answer["device_acc"] - answer["cpu_acc"]) <= 0.01 and answer["cpu_acc"] > 0.6


def test_fused_judge_reads_the_output_of_bench_variants():
    out = ("fused on           median 61,234 samples/s (min 60,000, max 62,000)\n"
           "fused off          median 55,667 samples/s (min 55,000, max 56,000)\n"
           "ratio on/off: 1.100\nlargest weight difference: 0.03\n"
           "largest weight difference float64 20 steps: 2.3e-07\n")
    ok, detail, extra = gc.fused_judge(gc.Result(0, out, 30.0))
    assert extra["ratio_on_off"] == 1.1 and extra["samples_per_second"] == {"on": 61234.0, "off": 55667.0}
    assert extra["largest_weight_difference"] == pytest.approx(2.3e-07)
    assert not ok  # 2.3e-07 is past the float64 bound: rounding alone does not get there
    assert detail == ("largest weight difference 2.3e-07 (at most 1e-08, float64); "
                      "fused update on/off 1.100x (61,234 vs 55,667 samples/s, batch 128)")
    ok, detail, _ = gc.fused_judge(gc.Result(1, "DataError: Fashion-MNIST not found; set XPMLP_DATA\n", 3.0))
    assert not ok and detail == "exit 1: DataError: Fashion-MNIST not found; set XPMLP_DATA"


# ------------------------------------------------------------------------------------------------
# the no-sync detectors, on fake libraries
# ------------------------------------------------------------------------------------------------

class FakeArray:
    """Stands for cupy.ndarray: each of these methods reads the device."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def item(self) -> float:
        return self.value

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def tolist(self) -> list[float]:
        return [self.value]


class FakeBackend:
    name = "cupy"
    on_gpu = True

    def context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        pass


class FakeJob:
    """A training loop on fake arrays; ``sync_at`` is the step that reads a value on the host."""

    def __init__(self, make: type = FakeArray, sync_at: int | None = None, read: str = "item") -> None:
        self.make, self.sync_at, self.read = make, sync_at, read
        self.model = types.SimpleNamespace(backend=FakeBackend(), params={"W1": make(), "b1": make()})
        self.steps_run = 0

    def train(self, steps: int, start: int = 0) -> Any:
        for i in range(start, start + steps):
            self.steps_run += 1
            if i == self.sync_at:
                getattr(self.model.params["W1"], self.read)()
        return self.make(0.5)


def test_call_counter_counts_and_restores_own_and_inherited_methods():
    class Child(FakeArray):
        def item(self) -> float:  # its own: must come back as it was
            return 7.0

    own_item = Child.__dict__["item"]
    counter = gw.CallCounter(Child, ("get", "item", "__float__", "__bool__", "missing"))
    with counter:
        a = Child(3.0)
        assert a.item() == 7.0 and a.get() == 3.0 and float(a) == 3.0 and bool(a) is True
        a.get()
    assert counter.calls == {"get": 2, "item": 1, "__float__": 1, "__bool__": 1}
    assert counter.total() == 5 and counter.unpatched == {"missing": "no such attribute"}
    assert counter.stacks and counter.stacks[0].startswith("item from test_gpu_check.py:")
    assert Child.__dict__["item"] is own_item and "get" not in Child.__dict__ and "__float__" not in Child.__dict__
    float(Child(1.0))
    assert counter.total() == 5  # not counting after the block


def test_call_counter_reports_an_immutable_type():
    with gw.CallCounter(int, ("__float__",)) as counter:
        float(3)
    assert "__float__" in counter.unpatched and counter.total() == 0


@pytest.fixture
def fake_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(ndarray=FakeArray))


def test_cupy_detector_passes_a_clean_loop_and_catches_its_control(fake_cupy):
    job = FakeJob()
    result = gw.cupy_nosync(job, steps=20)
    assert result["ok"] is True and result["loop_syncs"] == 0 and result["control_syncs"] >= 1
    assert job.steps_run == 23  # 3 warm-up steps, then the measured ones
    assert "__float__" in result["patched"] and "float(loss) caught" in result["detail"]


@pytest.mark.parametrize("read", ["item", "get", "__float__", "__bool__", "__int__", "tolist"])
def test_cupy_detector_catches_one_read_in_the_loop(fake_cupy, read):
    result = gw.cupy_nosync(FakeJob(sync_at=10, read=read), steps=20)
    assert result["ok"] is False and result["loop_syncs"] == 1
    assert f"{read} from test_gpu_check.py" in result["detail"] and "train" in result["detail"]


def test_cupy_detector_that_sees_nothing_fails(fake_cupy):
    class Elsewhere(FakeArray):  # not the patched class: the counter is blind to it
        pass

    sys.modules["cupy"].ndarray = type("Other", (), {n: FakeArray.__dict__[n] for n in gw.CUPY_REQUIRED})
    result = gw.cupy_nosync(FakeJob(make=Elsewhere), steps=5)
    assert result["ok"] is False and result["control_syncs"] == 0
    assert "blind" in result["detail"]


class FakeTensor:
    """float() of it is a sync: refused while the fake sync debug mode is 'error'."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def __float__(self) -> float:
        if self.torch.mode == "error" and not self.torch.blind:
            raise RuntimeError("called a synchronizing CUDA operation")
        return 0.5


def _fake_torch(blind: bool = False) -> Any:
    torch = types.SimpleNamespace(mode=0, blind=blind, modes_seen=[])

    def set_mode(mode: Any) -> None:
        torch.mode = mode
        torch.modes_seen.append(mode)

    torch.cuda = types.SimpleNamespace(get_sync_debug_mode=lambda: torch.mode, set_sync_debug_mode=set_mode)
    return torch


class FakeTorchJob(FakeJob):
    def __init__(self, torch: Any, sync_at: int | None = None) -> None:
        super().__init__()
        self.torch = torch
        self.sync_at = sync_at

    def train(self, steps: int, start: int = 0) -> Any:
        for i in range(start, start + steps):
            if i == self.sync_at:
                float(FakeTensor(self.torch))
        return FakeTensor(self.torch)


@pytest.mark.parametrize("sync_at, ok", [(None, True), (12, False)])
def test_torch_detector(monkeypatch, sync_at, ok):
    torch = _fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    result = gw.torch_nosync(FakeTorchJob(torch, sync_at), steps=20)
    assert result["ok"] is ok and result["control_syncs"] == 1
    assert result["loop_syncs"] == (0 if ok else 1)
    if not ok:
        assert "__float__" in result["detail"] and "train" in result["detail"]
    assert torch.mode == 0 and torch.modes_seen.count("error") == 2  # restored after each use


def test_torch_detector_that_sees_nothing_fails(monkeypatch):
    torch = _fake_torch(blind=True)
    monkeypatch.setitem(sys.modules, "torch", torch)
    result = gw.torch_nosync(FakeTorchJob(torch, sync_at=5), steps=20)
    assert result["ok"] is False and result["control_syncs"] == 0 and "cannot be trusted" in result["detail"]


def test_torch_detector_lets_other_errors_through(monkeypatch):
    torch = _fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)

    def boom() -> None:
        raise RuntimeError("CUDA out of memory")
    with pytest.raises(RuntimeError, match="out of memory"):
        gw.caught_sync(boom, torch)
    assert torch.mode == 0


def test_the_training_loop_of_the_workers_runs_on_the_cpu():
    # the real xpmlp API the GPU workers call (MLP, make_optimizer, asarray, take, loss, step)
    result = gw.worker_first_step("cpu", steps=4)
    assert result["ok"] is True and result["first_step_s"] > 0 and result["median_step_s"] > 0
    job = gw.make_job("cpu", [784, 32, 10], steps=5)
    before = {k: job.model.backend.to_numpy(v).copy() for k, v in job.model.params.items()}
    loss = job.train(5)
    assert 0 < float(loss) < 10
    assert all((job.model.backend.to_numpy(v) != before[k]).any() for k, v in job.model.params.items())
    assert gw.worker_nosync("cpu", steps=2)["ok"] is False  # not a GPU backend: says so


# ------------------------------------------------------------------------------------------------
# wheels
# ------------------------------------------------------------------------------------------------

def _wheel(folder: Path, dist: str, module: str) -> Path:
    path = folder / f"{dist}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "VALUE = 42\n")
        z.writestr(f"{dist}-0.1.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    return path


def test_missing_wheels_are_those_not_installed_and_unpack_onto_a_path(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    absent = _wheel(wheels, "xpmlp_fake_pkg", "xpmlp_fake_pkg")
    _wheel(wheels, "pytest", "pytest_unused")  # installed here: never reinstalled
    assert gc.wheel_distribution(absent) == "xpmlp-fake-pkg"
    assert gc.wheel_distribution("array_api_compat-1.16.0-py3-none-any.whl") == "array-api-compat"
    assert gc.missing_wheels(wheels) == [str(absent)]
    gc.unpack_wheels(tmp_path / "site", [str(absent)])
    out = subprocess.run([sys.executable, "-c", "import xpmlp_fake_pkg; print(xpmlp_fake_pkg.VALUE)"],
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")), capture_output=True, text=True)
    assert out.stdout.strip() == "42"


# ------------------------------------------------------------------------------------------------
# every judge fails on deliberately wrong results; a failed step fails the script and is named
# ------------------------------------------------------------------------------------------------

FUSED_OUT = ("fused on           median 61,234 samples/s (min 60,000, max 62,000)\n"
             "fused off          median 55,667 samples/s (min 55,000, max 56,000)\n"
             "ratio on/off: 1.100\nlargest weight difference float64 20 steps: {}\n")


@pytest.mark.parametrize("diff,ok", [("3e-13", True), ("1e-3", False), ("nan", False)])
def test_the_fused_step_fails_when_the_updates_differ(diff, ok):
    assert gc.fused_judge(gc.Result(0, FUSED_OUT.format(diff), 30.0))[0] is ok
    assert gc.fused_judge(gc.Result(0, FUSED_OUT.split("largest")[0], 30.0))[0] is False  # no difference printed


@pytest.mark.parametrize("loss,ok", [(2.302585, True), (float("nan"), False), (float("inf"), False), (2.31, False)])
def test_the_first_step_fails_on_a_loss_not_finite_or_not_the_cpus(loss, ok):
    assert gw.judge_first_loss(loss, 2.3025851)[0] is ok


def test_a_contender_ten_points_off_fails_the_bench_step(tmp_path):
    path = _bench(tmp_path, {"xpmlp": 90_000.0, "torch": 100_000.0, "gemm": 400_000.0})
    data = json.loads(path.read_text())
    for key, acc in (("xpmlp", 0.74), ("torch", 0.84), ("gemm", None)):
        data["contenders"][key]["test_acc"] = acc
    path.write_text(json.dumps(data))
    ok, detail, _ = gc.bench_judge(path, 128)(gc.Result(0, "", 1.0))
    assert not ok and detail.startswith("xpmlp test accuracy 0.7400 is more than 0.02 off the others' median 0.8400")
    data["contenders"]["xpmlp"]["test_acc"] = 0.835
    path.write_text(json.dumps(data))
    assert gc.bench_judge(path, 128)(gc.Result(0, "", 1.0))[0] is True


def _fed_to_the_script(tmp_path: Path, name: str, output: str, judge) -> tuple[int, str, Any]:
    """Step ``name`` run as the script runs it, on a command that prints ``output``; the script's end."""
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    report = gc.Report(out / "gpu-check.json", {"schema": gc.SCHEMA})
    ctx = gc.Context(out, report, time.monotonic() + 60, True, set(gc.STEPS))
    cmd = [sys.executable, "-c", f"import sys; sys.stdout.write({output!r})"]
    step = gc.run_step(ctx, name, cmd, 30, judge, gpu=False)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = gc.finish(report, out)
    return code, buffer.getvalue(), step


@pytest.mark.parametrize("name,output,judge", [
    ("fused cuda", FUSED_OUT.format("1e-3"), gc.fused_judge),
    ("first-step cuda", json.dumps({"ok": False, "detail": "first-step loss nan is not finite"}) + "\n",
     gc.worker_judge),
], ids=["fused", "first-step"])
def test_a_failed_step_makes_the_script_exit_1_and_its_summary_names_it(tmp_path, name, output, judge):
    code, printed, step = _fed_to_the_script(tmp_path, name, output, judge)
    assert step.status == "failed" and code == 1
    assert any(line.startswith(name) and " failed " in line for line in printed.splitlines()), printed
    with tarfile.open(tmp_path / "out" / "gpu-check-results.tar.gz") as tar:  # one archive holds it all
        names = tar.getnames()
        report = json.load(tar.extractfile("gpu-check/gpu-check.json"))
    assert "gpu-check/logs" in names and report["steps"][0]["status"] == "failed"


def test_the_nosync_job_takes_the_trainers_real_path(monkeypatch):
    """Augmentation and dropout draw on the device every step, and the update is the fused one."""
    job = gw.make_job("cpu", [784, 32, 10], steps=5, **gw.NOSYNC_PATH)
    backend = job.model.backend
    draws, fused = [], []
    uniform, fused_step = backend.uniform, job.model.fused_step
    monkeypatch.setattr(backend, "uniform", lambda *a, **k: draws.append(a[1]) or uniform(*a, **k))
    monkeypatch.setattr(job.model, "fused_step", lambda *a, **k: fused.append(1) or fused_step(*a, **k))
    job.train(5)
    assert len(fused) == 5 and len(draws) == 10  # per step: one augmentation draw, one dropout mask
    assert job.opt.can_fuse and job.augment is not None


def test_a_sigterm_mid_step_still_writes_the_report_and_the_archive(tmp_path):
    """A command limit ends the check with SIGTERM: the step is killed, the results so far come back packed."""
    import signal as signals

    env = {**_no_gpu_env(tmp_path), "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "run", "--out", str(out), "--require-gpu", "no"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, children = time.monotonic() + 60, Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    while not children.read_text().split():  # the first step (devices) is running in its child process
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    step_pid = int(children.read_text().split()[0])
    time.sleep(0.5)  # past Popen's fork and exec: the step is under way (it runs for seconds)
    proc.send_signal(signals.SIGTERM)
    printed, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, printed
    with tarfile.open(out / "gpu-check-results.tar.gz") as tar:
        report = json.load(tar.extractfile("gpu-check/gpu-check.json"))
    last = report["steps"][-1]
    assert report["finished"] is True and last["step"].startswith("stopped during")
    assert last["status"] == "failed" and "SIGTERM" in last["detail"]
    assert last["step"] in ("stopped during devices", "stopped during probe")  # probe: devices was quick
    assert not Path(f"/proc/{step_pid}").exists() or "zombie" in Path(f"/proc/{step_pid}/status").read_text()


def test_a_budget_too_small_for_any_step_still_writes_the_archive(tmp_path):
    env = {**_no_gpu_env(tmp_path), "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(out), "--budget", "1",
                           "--require-gpu", "no", "--only", "devices", "gradcheck"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    with tarfile.open(out / "gpu-check-results.tar.gz") as tar:
        report = json.load(tar.extractfile("gpu-check/gpu-check.json"))
    devices = {s["step"]: s for s in report["steps"]}["devices"]
    assert devices["status"] == "skipped" and "out of the time budget" in devices["detail"], proc.stdout


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_extras_compare_lbfgs_regressor_and_sparse_with_the_cpu():
    pytest.importorskip("sklearn")
    import numpy as np

    from xpmlp.backend import get_backend

    rng = np.random.default_rng(0)
    X, y = rng.random((200, 12)).astype(np.float32), rng.integers(0, 4, 200)
    checks = gw.estimator_extras(get_backend("strict:device1", "float32"), X, y, X, y)
    assert set(checks) == {"lbfgs", "regressor", "sparse"} and all(c["ok"] for c in checks.values()), checks
    assert "reads for" in checks["lbfgs"]["detail"] and checks["sparse"]["detail"].startswith("not run")
