"""Device correctness without a GPU: named strict devices, a CuPy-like current device, a fake CuPy.

* array-api-strict refuses to combine arrays of two devices, so a model trained on
  ``strict:device2`` proves that every array it makes lands on its own device.
* ``CurrentDeviceStrict`` behaves like array-api-compat's CuPy namespace: creation functions
  ignore ``device=`` (``asarray`` honours it unless ``copy=True``) and use a *current* device,
  which only ``backend.context()`` changes. Work done outside the context lands on the wrong
  device and then fails to combine: the tests below show the emulation catches exactly that.
* A fake ``cupy`` module in ``sys.modules`` drives every branch of the CuPy probe.
* A second fake, over NumPy, trains through ``CupyBackend``'s own fused step, ReLU, masks and
  draws; like the real package it has no ``cupy.cublas`` until that submodule is imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import math
import sys
import types
from typing import Any

import numpy as np
import pytest

import xpmlp.backend as backend_mod
from xpmlp.backend import CupyBackend, StrictBackend, get_backend
from xpmlp.backend.probes import clear_probes, probe_cupy
from xpmlp.errors import DeviceError, InputError
from xpmlp.losses import one_hot_mask
from xpmlp.model import MLP
from xpmlp.optim import make_optimizer
from xpmlp.train import TrainConfig, Trainer, evaluate

strict = pytest.importorskip("array_api_strict")

# -- relu_ and mask_: one definition on every backend -------------------------------------------

SPECIALS = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -2.5, 3.0, 1e-300, -1e-300]


def _relu_reference(v: float) -> float:
    return v if (math.isnan(v) or v > 0) else 0.0  # +0.0 for every v <= 0


def _specials_array(n: int = 1000) -> np.ndarray:
    """The special values at many positions, so vectorised (SIMD) loops and their tails meet them."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal(n)
    values[rng.choice(n, 200, replace=False)] = rng.choice(SPECIALS, 200)
    values[:len(SPECIALS)] = SPECIALS
    return values


def test_relu_gives_the_same_bits_on_every_backend(backend_any):
    host = _specials_array().astype(backend_any.dtype)
    out = backend_any.to_numpy(backend_any.relu_(backend_any.asarray(host)))
    want = np.array([_relu_reference(float(v)) for v in host], dtype=backend_any.dtype)
    np.testing.assert_array_equal(out, want)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))  # no −0.0 anywhere


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_relu_same_bits_with_and_without_its_zeros_buffer(dtype, monkeypatch):
    from xpmlp.backend import cpu

    backend = get_backend("cpu", dtype)
    # sizes around the buffer's first size (4096), a (N, D) batch, and a transposed (strided) view
    arrays = [_specials_array(n).astype(dtype) for n in (300, 4096, 4097, 9000)]
    block = _specials_array(6000).astype(dtype)
    arrays += [block.reshape(60, 100), block.reshape(100, 60).T]
    for host in arrays:
        want = np.array([_relu_reference(float(v)) for v in host.ravel()], dtype=dtype).reshape(host.shape)
        fast = backend.relu_(host.copy())  # from the zeros buffer
        monkeypatch.setattr(cpu, "_ZEROS_MAX", 0)
        scalar = backend.relu_(host.copy())  # maximum(x, 0.0)
        monkeypatch.undo()
        for out in (fast, scalar):
            np.testing.assert_array_equal(out, want)
            np.testing.assert_array_equal(np.signbit(out), np.signbit(want))
    zeros = cpu._ZEROS[np.dtype(dtype)]
    assert zeros.size >= 9000 and not zeros.any() and not zeros.flags.writeable


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.99])
def test_leaky_relu_forward_is_its_definition_bit_for_bit(backend_any, slope):
    from xpmlp.layers import LeakyReLU

    host = _specials_array().astype(backend_any.dtype)
    tiny = np.finfo(backend_any.dtype).smallest_subnormal
    host[-4:] = [tiny, -tiny, 3 * tiny, -3 * tiny]  # where c·x rounds back to x, or to ±0
    out = backend_any.to_numpy(LeakyReLU(backend_any, slope).forward(backend_any.asarray(host)))
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        want = np.where(host > 0, host, host.dtype.type(slope) * host)  # the definition: x if x > 0 else c·x
    np.testing.assert_array_equal(out, want)  # NaN where NaN (a NaN's sign bit means nothing)
    number = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(out[number]), np.signbit(want[number]))  # −0.0 where −0.0


def test_mask_is_the_ieee_product_on_every_backend(backend_any):
    d_host = _specials_array().astype(backend_any.dtype)
    keep_host = np.random.default_rng(1).random(d_host.shape) > 0.5
    with np.errstate(invalid="ignore"):  # inf · 0 is NaN, which is the point
        out = backend_any.to_numpy(backend_any.mask_(backend_any.asarray(d_host), backend_any.asarray(keep_host)))
        want = np.array([v * (1.0 if k else 0.0) for v, k in zip(d_host.tolist(), keep_host.tolist())],
                        dtype=backend_any.dtype)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


def test_relu_layer_plain_and_in_place_agree_bit_for_bit(backend_any):
    from xpmlp.layers import ReLU

    host = _specials_array(300).astype(backend_any.dtype)
    plain, fast = ReLU(backend_any), ReLU(backend_any, inplace=True)
    a = backend_any.to_numpy(plain.forward(backend_any.asarray(host)))
    b = backend_any.to_numpy(fast.forward(backend_any.asarray(host)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


# -- nothing the caller holds is aliased ----------------------------------------------------------

def test_asarray_copies_on_every_backend(backend_any):
    host = np.arange(6.0).astype(backend_any.dtype)
    dev = backend_any.asarray(host)
    host[:] = -1.0
    np.testing.assert_array_equal(backend_any.to_numpy(dev), np.arange(6.0))


def test_to_numpy_is_a_copy_on_every_backend(backend_any):
    dev = backend_any.asarray(np.arange(4.0))
    back = backend_any.to_numpy(dev)
    back[:] = 7.0
    np.testing.assert_array_equal(backend_any.to_numpy(dev), np.arange(4.0))


def test_training_after_load_state_dict_leaves_the_callers_dict_alone(backend):
    model = MLP([5, 4, 3], backend=backend, dtype="float64", seed=0)
    state = MLP([5, 4, 3], backend="cpu", dtype="float64", seed=1).state_dict()
    saved = {k: v.copy() for k, v in state.items()}
    model.load_state_dict(state)
    X = np.random.default_rng(0).standard_normal((20, 5))
    Trainer(model, TrainConfig(epochs=2, batch_size=5, lr=0.5), log=None, progress="none").fit(X, np.arange(20) % 3)
    for k, v in saved.items():
        np.testing.assert_array_equal(state[k], v)
    assert not np.array_equal(model.state_dict()["W1"], saved["W1"])  # and training did move the model


# -- named strict devices ---------------------------------------------------------------------------

DATA = np.random.default_rng(3).standard_normal((60, 6)), np.arange(60) % 3


def _train(model: MLP, epochs: int = 2, optimizer: str = "momentum") -> Trainer:
    X, y = DATA
    config = TrainConfig(epochs=epochs, batch_size=10, lr=0.1, optimizer=optimizer, train_eval_size=20)
    trainer = Trainer(model, config, log=None, progress="none")
    trainer.fit(X, y, X[:20], y[:20])
    return trainer


def test_a_model_on_device2_trains_evaluates_and_moves():
    two = get_backend("strict:device2", "float64")
    model = MLP([6, 5, 3], backend=two, dtype="float64", seed=0)
    _train(model)
    assert all(two.owns(p) for p in model.params.values())
    reference = MLP([6, 5, 3], backend="cpu", dtype="float64", seed=0)
    _train(reference)
    for k, v in reference.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v, rtol=0, atol=1e-12)
    one = model.to("strict:device1")
    assert all(get_backend("strict:device1").owns(p) for p in one.params.values())


def test_inputs_from_another_device_are_moved():
    one, two = get_backend("strict:device1", "float64"), get_backend("strict:device2", "float64")
    model = MLP([6, 5, 3], backend=two, dtype="float64", seed=0)
    X, y = DATA
    logits = model.forward(one.asarray(X))
    assert two.owns(logits)
    loss, dev_acc = evaluate(model, model.check_x(one.asarray(X)), model.check_y(one.asarray(y), 60))
    assert math.isfinite(loss) and 0.0 <= dev_acc <= 1.0


def test_an_unknown_array_type_is_one_line():
    model = MLP([6, 5, 3], backend="cpu", seed=0)
    with pytest.raises(InputError, match="pass a NumPy array") as info:
        model.forward({"not": "an array"})
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="is None"):
        model.forward(None)


@pytest.mark.parametrize("spec", ["strict:device9", "strict:cpu:device1", "strict:"])
def test_unknown_strict_device_lists_the_names(spec):
    with pytest.raises(DeviceError, match="strict:device1") as info:
        get_backend(spec)
    assert "\n" not in str(info.value)


# -- a CuPy-like current device -----------------------------------------------------------------------

CREATION = ("arange", "empty", "eye", "full", "linspace", "ones", "zeros")
LIKE = ("empty_like", "full_like", "ones_like", "zeros_like")


class CurrentDeviceStrict(types.ModuleType):
    """array-api-strict whose creation functions use a current device, as CuPy's do.

    Every other function refuses arrays that are not on the current device, as a CuPy kernel
    launched on another device than its operands' would misbehave.
    """

    def __init__(self) -> None:
        super().__init__("current_device_strict")
        self.current = strict.Device("CPU_DEVICE")

    def __getattr__(self, name: str) -> Any:
        value = getattr(strict, name)
        if name in CREATION:
            return lambda *a, device=None, **k: value(*a, device=self.current, **k)
        if name in LIKE:
            return lambda x, *a, device=None, **k: value(x, *a, device=self.current, **k)
        if name == "asarray":
            def asarray(obj: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> Any:
                where = self.current if copy is True or device is None else device
                return value(obj, dtype=dtype, device=where, copy=copy)
            return asarray
        if callable(value) and not isinstance(value, type):
            def on_current(*args: Any, **kwargs: Any) -> Any:
                for a in list(args) + list(kwargs.values()):
                    for item in a if isinstance(a, (list, tuple)) else [a]:
                        device = getattr(item, "device", None)
                        if device is not None and device != self.current:
                            raise ValueError(f"{name}: an array on {device} while {self.current} is current")
                return value(*args, **kwargs)
            return on_current
        return value


class CurrentDeviceBackend(StrictBackend):
    """A strict device that, like CuPy, is only used for new arrays while its context is entered."""

    name = "current-device strict"

    def __init__(self, namespace: CurrentDeviceStrict, device_name: str, dtype: str = "float64") -> None:
        super().__init__(device_name, dtype)
        self.xp, self.spec = namespace, f"emulated:{device_name}"

    @contextlib.contextmanager
    def context(self):
        previous, self.xp.current = self.xp.current, self.device
        try:
            yield
        finally:
            self.xp.current = previous


@pytest.fixture
def emulated():
    """(backend on device2, namespace) with device1 made current, as another backend would leave it."""
    namespace = CurrentDeviceStrict()
    namespace.current = strict.Device("device1")
    return CurrentDeviceBackend(namespace, "device2"), namespace


def test_the_emulation_catches_work_outside_the_context(emulated):
    backend, namespace = emulated
    labels = backend.asarray(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="different devices"):
        one_hot_mask(labels, 3, namespace)  # arange lands on device1: what CuPy would do silently
    with pytest.raises(ValueError, match="while .*device1.* is current"):
        namespace.sum(labels)  # a kernel launched on device1 with operands on device2
    with backend.context():
        assert backend.owns(one_hot_mask(labels, 3, namespace))
        assert int(namespace.sum(labels)) == 3


def test_training_resume_and_evaluation_stay_on_the_backends_device(emulated):
    backend, namespace = emulated
    model = MLP([6, 5, 3], backend=backend, dtype="float64", seed=0)
    first = _train(model, epochs=1, optimizer="adam")
    assert namespace.current == strict.Device("device1")  # every context was left again
    optim_state = first.optimizer.state_dict()
    resumed = MLP.from_config(model.config(), backend)
    resumed.load_state_dict(model.state_dict())
    trainer = Trainer(resumed, TrainConfig(epochs=2, batch_size=10, lr=0.1, optimizer="adam", train_eval_size=20),
                      log=None, progress="none")
    trainer.optimizer.load_state_dict(optim_state, backend.asarray)
    trainer.load_state(first.state(), None)
    X, y = DATA
    trainer.fit(X, y, X[:20], y[:20])
    assert all(backend.owns(p) for p in resumed.params.values())
    assert all(backend.owns(s) for table in trainer.optimizer.state.values() for s in table.values())
    straight = _train(MLP([6, 5, 3], backend="cpu", dtype="float64", seed=0), epochs=2, optimizer="adam")
    for k, v in straight.model.state_dict().items():
        np.testing.assert_allclose(resumed.state_dict()[k], v, rtol=0, atol=1e-12)
    assert backend.owns(resumed.predict(X)) and backend.owns(resumed.predict_proba(X))
    moved = resumed.to(CurrentDeviceBackend(namespace, "CPU_DEVICE"))
    np.testing.assert_array_equal(moved.state_dict()["W1"], resumed.state_dict()["W1"])


def test_an_optimizer_step_outside_any_context_keeps_its_state_on_the_device(emulated):
    backend, _ = emulated
    W = backend.asarray(np.ones((2, 2)))
    opt = make_optimizer("adam", 0.1, backend=backend)
    opt.step({"W": W}, {"W": backend.asarray(np.full((2, 2), 0.5))})
    assert backend.owns(opt.state["m"]["W"]) and backend.owns(opt.state["v"]["W"])


# -- a fake CuPy drives every branch of the probe ----------------------------------------------------

class FakeCudaError(Exception):
    pass


def _fake_cupy(count: Any = 1, kernel: Exception | None = None, matmul: Exception | None = None,
               error_name: str = "CUDARuntimeError") -> types.ModuleType:
    """A ``cupy`` stand-in: ``count`` devices (or an exception), failures at the kernel or the GEMM."""
    error = type(error_name, (FakeCudaError,), {})
    cupy = types.ModuleType("cupy")

    def get_count() -> int:
        if isinstance(count, str):
            raise error(count)
        return count

    class FakeArray:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def __mul__(self, k: float) -> FakeArray:
            if kernel is not None:
                raise kernel
            return FakeArray(self.a * k)

        def __matmul__(self, other: FakeArray) -> FakeArray:
            if matmul is not None:
                raise matmul
            return FakeArray(self.a @ other.a)

        def sum(self) -> FakeArray:
            return FakeArray(self.a.sum())

        def item(self) -> float:
            return float(self.a)

    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count),
                                      Device=lambda i: contextlib.nullcontext())
    cupy.float32 = np.float32
    cupy.arange = lambda n, dtype=None: FakeArray(np.arange(n, dtype=dtype))
    cupy.ones = lambda shape, dtype=None: FakeArray(np.ones(shape, dtype=dtype))
    return cupy


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install a fake ``cupy`` (built by the test) and forget cached probe results around the test."""
    clear_probes()

    def install(module: types.ModuleType | None) -> tuple[int, str]:
        monkeypatch.setitem(sys.modules, "cupy", module)  # None: "import cupy" raises ImportError
        clear_probes()
        return probe_cupy()

    yield install
    monkeypatch.undo()
    clear_probes()


def _nvrtc_error() -> Exception:
    return type("CompileException", (Exception,), {})("nvrtc: error: failed to load libnvrtc.so.12")


def _cublas_error() -> Exception:
    return ImportError("libcublas.so.12: cannot open shared object file: No such file or directory")


def _oom_error() -> Exception:
    return type("OutOfMemoryError", (Exception,), {})("Out of memory allocating 512 bytes")


@pytest.mark.parametrize("make,words", [
    (lambda: None, ["CuPy is not installed", "xpmlp[cuda12]"]),
    (lambda: _fake_cupy(count=0), ["no CUDA GPU"]),
    (lambda: _fake_cupy(count="cudaErrorNoDevice: no CUDA-capable device is detected"), ["no CUDA GPU"]),
    (lambda: _fake_cupy(count="cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
     ["driver"]),
    (lambda: _fake_cupy(kernel=_nvrtc_error()), ["[ctk]", "NVRTC", "CompileException"]),
    (lambda: _fake_cupy(matmul=_cublas_error()), ["[ctk]", "cuBLAS", "libcublas"]),
    (lambda: _fake_cupy(kernel=_oom_error()), ["out of memory"]),
    (lambda: _fake_cupy(matmul=RuntimeError("something else entirely")), ["matrix product", "something else"]),
], ids=["not-installed", "zero-devices", "no-device", "driver", "no-nvrtc", "no-cublas", "oom", "other"])
def test_each_cupy_failure_is_named_with_its_fix(fake_cupy, make, words):
    count, why = fake_cupy(make())
    assert count == 0
    assert "\n" not in why
    for word in words:
        assert word in why, (word, why)


def test_a_missing_driver_library_and_an_old_driver_are_told_apart(fake_cupy, monkeypatch):
    import xpmlp.backend.probes as probes

    too_old = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"
    monkeypatch.setattr(probes.ctypes.util, "find_library", lambda name: None)
    assert "no NVIDIA driver is installed" in fake_cupy(_fake_cupy(count=too_old))[1]
    monkeypatch.setattr(probes.ctypes.util, "find_library", lambda name: "libcuda.so.1")
    assert "too old" in fake_cupy(_fake_cupy(count=too_old))[1]


def test_a_working_fake_gpu_passes_both_kernel_and_gemm(fake_cupy):
    assert fake_cupy(_fake_cupy(count=2)) == (2, "")


def test_auto_falls_back_to_the_cpu_and_says_why(fake_cupy):
    fake_cupy(_fake_cupy(matmul=_cublas_error()))
    backend = get_backend("auto")
    assert backend.spec == "cpu" and "cuBLAS" in backend.note and backend.note.startswith("auto: using the CPU")
    with pytest.raises(DeviceError, match=r"\[ctk\]") as info:
        get_backend("cuda")
    assert "--device cpu" in str(info.value) and "\n" not in str(info.value)


def test_auto_picks_a_working_gpu(fake_cupy, monkeypatch):
    fake_cupy(_fake_cupy(count=1))
    built = []

    class StubCupyBackend(StrictBackend):
        def __init__(self, index: int, dtype: str) -> None:
            super().__init__("CPU_DEVICE", dtype)
            built.append(index)

    monkeypatch.setattr(backend_mod, "CupyBackend", StubCupyBackend)
    backend = get_backend("auto")
    assert built == [0] and backend.note == "auto: using CUDA GPU cuda:0 through CuPy"
    with pytest.raises(DeviceError, match="cuda:0 to cuda:0"):
        get_backend("cuda:1")


# -- a fake CuPy that trains: the CuPy backend's own code paths on NumPy arrays ---------------------

class _CublasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import cupy.cublas`` work as in the real package: the attribute appears only then."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name == "cupy.cublas" else None

    def create_module(self, spec: Any) -> types.ModuleType:
        cublas = types.ModuleType("cupy.cublas")
        calls = self.calls

        def gemm(transa: str, transb: str, a: np.ndarray, b: np.ndarray, out: np.ndarray,
                 alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
            calls.append("gemm")
            op_a, op_b = (a.T if transa == "T" else a), (b.T if transb == "T" else b)
            out[...] = alpha * (op_a @ op_b) + beta * out
            return out

        def axpy(a: float, x: np.ndarray, y: np.ndarray) -> None:
            calls.append("axpy")
            y += a * x  # into y as given: a copy made by the caller loses the update, as on the GPU

        cublas.gemm, cublas.axpy = gemm, axpy
        return cublas

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _training_cupy(calls: list[str]) -> types.ModuleType:
    """A ``cupy`` package over NumPy with what CupyBackend uses; no ``random``, no ``cublas`` until imported."""
    from xpmlp.backend.gpu import counter_uniform

    cupy = types.ModuleType("cupy")
    cupy.__path__ = []  # a package, so that ``import cupy.cublas`` asks the finder
    cupy.ndarray = np.ndarray
    cupy.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext())
    cupy.multiply, cupy.empty = np.multiply, np.empty

    def elementwise_kernel(in_params: str, out_params: str, operation: str, name: str) -> Any:
        calls.append(f"compile {name}")
        if name == "xpmlp_relu":
            return lambda x, y: np.copyto(y, np.where(x <= 0, 0.0, x)) or y
        if name == "xpmlp_uniform":
            return lambda key, u: np.copyto(u, counter_uniform(u.size, int(key), str(u.dtype)).reshape(u.shape)) or u
        raise AssertionError(f"unexpected kernel {name}")

    cupy.ElementwiseKernel = elementwise_kernel
    return cupy


class _EmulatedCupyBackend(CupyBackend):
    """CupyBackend unchanged but for its device: NumPy's arrays live on the device named 'cpu'."""

    def __init__(self, index: int, dtype: str) -> None:
        super().__init__(index, dtype)
        self.device = "cpu"

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        return np.array(a, copy=True)  # CuPy's a.get()

    def same_device(self, a: Any) -> bool:
        return True


@pytest.fixture
def training_cupy(monkeypatch):
    """Install the training fake and array-api-compat's NumPy namespace in place of its CuPy one."""
    import array_api_compat.numpy

    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "cupy", _training_cupy(calls))
    monkeypatch.delitem(sys.modules, "cupy.cublas", raising=False)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", array_api_compat.numpy)
    monkeypatch.setattr(sys, "meta_path", [_CublasFinder(calls), *sys.meta_path])
    yield calls


def test_the_fake_cupy_has_no_cublas_until_it_is_imported(training_cupy):
    import cupy

    assert not hasattr(cupy, "cublas")
    importlib.import_module("cupy.cublas")
    assert hasattr(cupy, "cublas")


def test_one_fused_training_step_runs_through_the_cupy_backend(training_cupy):
    backend = _EmulatedCupyBackend(0, "float64")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 6)), rng.integers(0, 3, 32)
    model = MLP([6, 8, 3], "relu", backend=backend, dtype="float64", seed=1, dropout=0.5)
    before = model.state_dict()["W1"]
    config = TrainConfig(iterations=1, log_every=1, batch_size=32, lr=0.1, optimizer="momentum",
                         train_eval_size=0, fused=True)
    trainer = Trainer(model, config, log=None, progress="none")
    trainer.fit(X, y)
    assert trainer.optimizer.can_fuse and "gemm" in training_cupy
    assert np.isfinite(trainer.history.iteration_loss[0])
    assert not np.array_equal(model.state_dict()["W1"], before)


@pytest.mark.parametrize("order", ["C", "F"])
def test_cupy_axpy_updates_contiguous_and_strided_arrays_in_place(training_cupy, order):
    backend = _EmulatedCupyBackend(0, "float64")
    y = np.asarray(np.arange(12.0).reshape(3, 4), order=order)
    x = np.asarray(np.ones((3, 4)), order=order)
    out = backend.axpy_(y, 0.5, x)
    assert out is y
    np.testing.assert_array_equal(y, np.arange(12.0).reshape(3, 4) + 0.5)
    assert ("axpy" in training_cupy) == (order == "C")  # cuBLAS only where the flat view is no copy


def test_cupy_uniform_is_a_pure_function_of_its_key_and_compiles_once(training_cupy):
    backend = _EmulatedCupyBackend(0, "float32")
    first = backend.uniform((1000,), (7, 3))
    again = backend.uniform((1000,), (7, 3))
    other = backend.uniform((1000,), (7, 4))
    np.testing.assert_array_equal(first, again)  # resume: the same key draws the same numbers
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32 and 0.0 <= first.min() and first.max() < 1.0
    assert abs(float(first.mean()) - 0.5) < 0.05
    assert training_cupy.count("compile xpmlp_uniform") == 1  # one kernel, no generator made per draw
