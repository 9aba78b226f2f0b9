"""Tests for xpmlp.backend: device specs, host <-> device moves, the host RNG, probes and errors.

This machine has no CUDA GPU and no CuPy; the GPU specs are checked for the error they give here,
and a one-GPU box is simulated by monkeypatching the CuPy probe (tests/test_devices.py goes further
with a fake ``cupy`` module).
"""

from __future__ import annotations

import importlib

import array_api_compat
import numpy as np
import pytest

import xpmlp.backend as backend_mod
import xpmlp.backend.probes as probes_mod
from xpmlp import DeviceError, get_backend, to_numpy
from xpmlp.backend import NumpyBackend, available_specs, check_dtype, describe_devices, host_rng

VALID_SPEC_WORDS = ("cpu", "numpy", "cuda", "torch", "strict", "auto")

# These tests describe a machine like the CI one: CuPy not installed, PyTorch built for the CPU only.
NO_CUPY = "CuPy is not installed" in backend_mod.backend_unavailable("cuda")
no_cupy_here = pytest.mark.skipif(not NO_CUPY, reason="CuPy is installed here")
no_torch_cuda_here = pytest.mark.skipif(not backend_mod.backend_unavailable("torch:cuda"),
                                        reason="PyTorch sees a CUDA GPU here")


def _one_line(msg: str) -> bool:
    return "\n" not in msg and msg.strip() == msg and len(msg) > 20


# -- choosing a backend ----------------------------------------------------------

@pytest.mark.parametrize("spec", ["cpu", "numpy", "CPU", "  numpy "])
def test_cpu_specs_give_numpy(spec):
    b = get_backend(spec)
    assert b.name == "numpy"
    assert b.spec == "cpu"
    assert b.xp is array_api_compat.numpy
    assert b.dtype == "float32"
    x = b.asarray([1.0, 2.0])
    assert isinstance(x, np.ndarray)


def test_strict_spec():
    strict = importlib.import_module("array_api_strict")
    b = get_backend("strict", "float64")
    assert (b.name, b.spec, b.dtype) == ("strict", "strict", "float64")
    assert b.xp is strict
    x = b.asarray([1.0, 2.0])
    assert type(x).__module__.split(".")[0] == "array_api_strict"
    assert x.dtype == strict.float64


@pytest.mark.needs_backend("torch")
def test_torch_spec():
    torch = importlib.import_module("torch")
    b = get_backend("torch")
    assert (b.name, b.spec) == ("torch", "torch")
    assert b.device == torch.device("cpu")
    x = b.asarray([1.0, 2.0])
    assert isinstance(x, torch.Tensor)
    assert x.dtype == torch.float32
    assert x.device.type == "cpu"


@no_cupy_here
def test_auto_without_gpu_picks_cpu_and_says_why():
    b = get_backend("auto")
    assert b.name == "numpy"
    assert b.spec == "cpu"
    assert "CPU" in b.note
    assert b.note.startswith("auto:")


@no_cupy_here
def test_auto_note_keeps_the_reason_readable():
    # The reason comes from the CuPy probe ("CuPy is not installed ..."); the note must not mangle
    # the library's name while splicing the sentence together.
    note = get_backend("auto").note
    assert "CuPy" in note, note


def test_default_spec_is_auto():
    assert get_backend().note.startswith("auto:")


def test_backend_instance_passes_through_and_changes_dtype():
    b = get_backend("cpu", "float64")
    assert get_backend(b, "float64") is b
    b32 = get_backend(b, "float32")
    assert b32.dtype == "float32" and b32.name == "numpy" and b32.xp is b.xp
    assert b.dtype == "float64"  # the original is left alone


def test_with_dtype_and_float_dtype(backend):
    xp = backend.xp
    assert backend.dtype == "float64"
    assert backend.float_dtype() == xp.float64
    assert backend.float_dtype("float32") == xp.float32
    b32 = backend.with_dtype("float32")
    assert b32.dtype == "float32" and b32.float_dtype() == xp.float32
    assert b32.name == backend.name and b32.spec == backend.spec


def test_str_names_spec_and_dtype(backend):
    s = str(backend)
    assert backend.spec in s and "float64" in s and backend.name in s


@pytest.mark.parametrize("dtype", ["float16", "int32", "float", "bfloat16", ""])
def test_bad_dtype_raises_value_error(dtype):
    with pytest.raises(ValueError, match="float32"):
        get_backend("cpu", dtype)


def test_check_dtype_accepts_names_and_dtype_objects():
    assert check_dtype("float32") == "float32"
    assert check_dtype("float64") == "float64"
    assert check_dtype(np.dtype("float64")) == "float64"
    with pytest.raises(ValueError):
        check_dtype("int64")


@pytest.mark.needs_backend("torch")
def test_check_dtype_accepts_torch_dtypes():
    torch = importlib.import_module("torch")
    assert check_dtype(torch.float32) == "float32"
    assert check_dtype(torch.float64) == "float64"


def test_asarray_bad_dtype_raises(backend):
    with pytest.raises(ValueError):
        backend.asarray([1.0, 2.0], dtype="float16")


# -- host <-> device ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_round_trip(backend, dtype):
    xp = backend.xp
    host = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    dev = backend.asarray(host, dtype=dtype)
    assert dev.dtype == getattr(xp, dtype)
    assert tuple(dev.shape) == (3, 4)
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host)


def test_float_input_takes_backend_default_dtype(backend):
    xp = backend.xp
    host32 = np.array([0.1, 0.2], dtype=np.float32)
    dev = backend.asarray(host32)  # backend default is float64
    assert dev.dtype == xp.float64
    np.testing.assert_array_equal(backend.to_numpy(dev), host32.astype(np.float64))
    dev32 = backend.with_dtype("float32").asarray(np.array([0.1, 0.2]))
    assert dev32.dtype == xp.float32
    np.testing.assert_array_equal(backend.to_numpy(dev32), np.array([0.1, 0.2], dtype=np.float32))


@pytest.mark.parametrize("host_dtype", ["int8", "int32", "int64", "uint8"])
def test_integer_labels_round_trip_as_int64(backend, host_dtype):
    xp = backend.xp
    labels = np.array([0, 3, 9, 1, 7], dtype=host_dtype)
    dev = backend.asarray(labels)
    assert dev.dtype == xp.int64
    back = backend.to_numpy(dev)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels.astype(np.int64))


def test_bool_round_trip(backend):
    mask = np.array([True, False, True])
    dev = backend.asarray(mask)
    assert dev.dtype == backend.xp.bool
    np.testing.assert_array_equal(backend.to_numpy(dev), mask)


def test_nested_list_round_trip(backend):
    dev = backend.asarray([[1.5, 2.0], [3.0, -4.25]])
    np.testing.assert_array_equal(backend.to_numpy(dev), np.array([[1.5, 2.0], [3.0, -4.25]]))


def test_integer_input_with_dtype_is_cast_to_float(backend):
    dev = backend.asarray(np.array([1, 2, 3]), dtype="float32")
    assert dev.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(dev), np.array([1.0, 2.0, 3.0], dtype=np.float32))


def test_zero_d_round_trip_keeps_shape(backend):
    # A scalar moved to the device must stay a 0-d array, not become shape (1,).
    dev = backend.asarray(np.float64(2.5))
    assert tuple(dev.shape) == ()
    back = backend.to_numpy(dev)
    assert back.shape == () and float(back) == 2.5


def test_asarray_rejects_non_numbers(backend):
    with pytest.raises(TypeError, match="number dtype"):
        backend.asarray(np.array(["a", "b"]))


def test_module_to_numpy_on_every_backend_array(backend):
    dev = backend.asarray([1.0, 2.0, 3.0])
    back = to_numpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, [1.0, 2.0, 3.0])


def test_to_numpy_of_python_values():
    np.testing.assert_array_equal(to_numpy([1, 2]), np.array([1, 2]))
    assert to_numpy(3.5).shape == () and float(to_numpy(3.5)) == 3.5
    np.testing.assert_array_equal(to_numpy(np.arange(3.0)), [0.0, 1.0, 2.0])


def test_synchronize_returns(backend):
    assert backend.synchronize() is None


# -- host RNG ----------------------------------------------------------------------------

def test_rng_same_seed_same_draws(backend):
    a = backend.rng(123).standard_normal(20)
    b = backend.rng(123).standard_normal(20)
    np.testing.assert_array_equal(a, b)
    # and they are the plain NumPy PCG64 draws, identical on every backend
    np.testing.assert_array_equal(a, np.random.default_rng(123).standard_normal(20))


def test_rng_different_seeds_differ(backend):
    a = backend.rng(1).standard_normal(20)
    b = backend.rng(2).standard_normal(20)
    assert not np.array_equal(a, b)


def test_rng_is_a_host_generator_identical_across_backends():
    draws = [get_backend(s).rng(7).integers(0, 1000, 10) for s in available_specs()]
    assert len(draws) >= 2 and all(isinstance(d, np.ndarray) for d in draws)
    for d in draws[1:]:
        np.testing.assert_array_equal(draws[0], d)
    assert isinstance(host_rng(0), np.random.Generator)


# -- unusable specs ------------------------------------------------------------------------

@no_cupy_here
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_cupy_names_the_extra(spec):
    with pytest.raises(DeviceError) as info:
        get_backend(spec)
    msg = str(info.value)
    assert _one_line(msg), msg
    assert "xpmlp[cuda12]" in msg
    assert "CuPy" in msg
    assert "cpu" in msg  # the way out: --device cpu


@no_cupy_here
def test_device_error_is_a_runtime_error():
    with pytest.raises(RuntimeError):
        get_backend("cuda")


def test_cuda_index_beyond_device_count(monkeypatch):
    monkeypatch.setattr(backend_mod, "probe_cupy", lambda: (1, ""))
    with pytest.raises(DeviceError) as info:
        get_backend("cuda:3")
    msg = str(info.value)
    assert _one_line(msg), msg
    assert "cuda:3" in msg
    assert "1 CUDA GPU" in msg
    assert "cuda:0" in msg  # the valid range


@no_torch_cuda_here
@pytest.mark.needs_backend("torch")
def test_torch_cuda_without_cuda_build():
    with pytest.raises(DeviceError) as info:
        get_backend("torch:cuda")
    msg = str(info.value)
    assert _one_line(msg), msg
    assert "torch:cuda" in msg
    assert "CUDA build of PyTorch" in msg
    assert "--device torch" in msg


@pytest.mark.parametrize("spec", ["torch:gpu", "torch:cuda:0:1", "torch:cpu"])
def test_bad_torch_specs(spec):
    with pytest.raises(DeviceError) as info:
        get_backend(spec)
    msg = str(info.value)
    assert _one_line(msg), msg
    assert "torch:cuda" in msg


@pytest.mark.parametrize("spec", ["gpu", "cdua", "cuda:0:1", "tensorflow", ""])
def test_typo_lists_valid_specs(spec):
    with pytest.raises(DeviceError) as info:
        get_backend(spec)
    msg = str(info.value)
    assert _one_line(msg), msg
    assert repr(spec) in msg
    for word in VALID_SPEC_WORDS:
        assert word in msg, (word, msg)


@pytest.mark.parametrize("spec", ["cuda:x", "cuda:", "cuda:-1", "torch:cuda:one"])
def test_bad_device_index(spec):
    with pytest.raises(DeviceError) as info:
        get_backend(spec)
    msg = str(info.value)
    assert _one_line(msg), msg
    assert "bad device number" in msg
    assert "cuda:0" in msg


# -- probes and the device table -------------------------------------------------------------

@no_cupy_here
@no_torch_cuda_here
@pytest.mark.needs_backend("torch")
def test_describe_devices_rows():
    rows = describe_devices()
    assert all(isinstance(r, tuple) and len(r) == 3 for r in rows)
    table = {name: (ok, why) for name, ok, why in rows}
    assert table["cpu"][0] is True and "NumPy" in table["cpu"][1]
    assert table["strict"][0] is True
    assert table["torch"][0] is True and "PyTorch" in table["torch"][1]
    ok, why = table["cuda"]
    assert ok is False
    assert "CuPy" in why and "xpmlp[cuda12]" in why
    ok, why = table["torch:cuda"]
    assert ok is False and why


def test_describe_devices_lists_each_simulated_gpu(monkeypatch):
    monkeypatch.setattr(backend_mod, "probe_cupy", lambda: (2, ""))
    names = [(name, ok) for name, ok, _ in describe_devices()]
    assert ("cuda:0", True) in names and ("cuda:1", True) in names
    assert all(name != "cuda" for name, _ in names)


@no_cupy_here
def test_available_specs_here():
    specs = available_specs()
    assert specs[0] == "cpu"
    assert "strict" in specs
    assert ("torch" in specs) == (not backend_mod.backend_unavailable("torch"))
    assert "cuda" not in specs
    assert available_specs(include_gpu=False) == specs


@no_cupy_here
def test_cupy_probe_result_here():
    count, why = probes_mod.probe_cupy()
    assert count == 0
    assert "CuPy is not installed" in why


def test_cupy_probe_is_cached(monkeypatch):
    probe = probes_mod.probe_cupy
    first = probe()
    hits = probe.cache_info().hits
    calls = []
    real_import = importlib.import_module

    def spy(name, *args, **kwargs):
        calls.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(probes_mod.importlib, "import_module", spy)
    second = probe()
    assert second == first
    assert probe.cache_info().hits == hits + 1
    assert "cupy" not in calls  # no second import attempt
    assert probe.cache_info().misses >= 1


def test_backends_compare_equal_by_spec_and_dtype():
    assert get_backend("cpu", "float64") == get_backend("numpy", "float64")
    assert get_backend("cpu", "float64") != get_backend("cpu", "float32")
    assert get_backend("strict") != get_backend("strict:device1")
    assert len({get_backend("cpu"), get_backend("numpy"), get_backend("strict")}) == 2
    b = NumpyBackend()
    assert b.dtype == "float32" and b.note == ""
    assert b.float_dtype() == array_api_compat.numpy.float32


def test_owns_checks_library_and_device():
    cpu = get_backend("cpu")
    one, two = get_backend("strict:device1"), get_backend("strict:device2")
    assert cpu.owns(np.zeros(2)) and not cpu.owns([1.0]) and not cpu.owns(one.asarray([1.0]))
    assert one.owns(one.asarray([1.0])) and not one.owns(two.asarray([1.0]))
    assert not one.owns(np.zeros(2))
