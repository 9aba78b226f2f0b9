"""safetensors weights: bit-identical round trips, files that are not ours refused in one line, PyTorch reads them."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest

from xpmlp.cli import main
from xpmlp.errors import CheckpointError, InputError
from xpmlp.layers import ACTIVATIONS, Dropout, Linear, ReLU, Tanh
from xpmlp.model import MLP, Sequential

st = pytest.importorskip("safetensors.numpy")

from xpmlp.export.safetensors import FORMAT, save_safetensors  # noqa: E402


def _models(dtype):
    return [MLP([7, 6, 5, 3], activation="tanh", backend="cpu", dtype=dtype, seed=1),
            MLP([7, 6, 5, 3], activation=["selu", "leaky_relu:0.2"], backend="cpu", dtype=dtype, seed=2),
            Sequential([Linear(7, 6), Tanh(), Dropout(0.3), Linear(6, 4), ReLU(), Linear(4, 3)], backend="cpu",
                       dtype=dtype, seed=3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_identical(tmp_path, dtype):
    for i, model in enumerate(_models(dtype)):
        # weights unlike the seed's, so a loader that rebuilt from the seed alone would fail
        model.load_state_dict({k: v * 1.5 + 0.25 for k, v in model.state_dict().items()})
        path = model.to_safetensors(tmp_path / f"m{i}.safetensors")
        back = MLP.from_safetensors(path, device="cpu")
        assert type(back) is type(model) and back.config() == model.config() and back.dtype == dtype
        for name, value in model.state_dict().items():
            got = back.state_dict()[name]
            assert got.dtype == value.dtype and np.array_equal(got, value), name
        X = np.random.default_rng(0).standard_normal((5, 7))
        assert np.array_equal(back.backend.to_numpy(back.forward(X)), model.backend.to_numpy(model.forward(X)))


def test_the_file_is_plain_safetensors_with_the_documented_names(tmp_path):
    model = MLP([4, 3, 2], backend="cpu", dtype="float64", seed=0)
    path = save_safetensors(model, tmp_path / "m.safetensors")
    tensors = st.load_file(str(path))
    assert sorted(tensors) == ["W1", "W2", "b1", "b2"]
    assert tensors["W1"].shape == (4, 3) and tensors["b2"].shape == (2,) and tensors["W1"].dtype == np.float64
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT and json.loads(meta["config"]) == model.config()
    assert MLP.from_safetensors(path, device="cpu", dtype="float32").dtype == "float32"


def _header_file(tmp_path, header, payload=b""):
    raw = json.dumps(header).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


def test_files_that_are_not_ours_are_refused_in_one_line(tmp_path):
    good = save_safetensors(MLP([4, 3], backend="cpu", seed=0), tmp_path / "good.safetensors")
    data = good.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    theirs = tmp_path / "theirs.safetensors"
    theirs.write_bytes(st.save({"weight": np.ones((3, 4), np.float32)}))
    cases = {
        "empty": b"",
        "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
        "huge header length": struct.pack("<Q", 1 << 62) + b"{}",
        "truncated": data[: len(data) - 5],
        "header not JSON": struct.pack("<Q", 4) + b"\xff\xfe{x",
    }
    for what, blob in cases.items():
        path = tmp_path / f"{what}.safetensors"
        path.write_bytes(blob)
        with pytest.raises(CheckpointError) as info:
            MLP.from_safetensors(path, device="cpu")
        assert str(path) in str(info.value) and "\n" not in str(info.value), what
    with pytest.raises(CheckpointError, match="another program's tensors"):
        MLP.from_safetensors(theirs, device="cpu")
    altered = {**header, "__metadata__": {**header["__metadata__"], "config": "{not json"}}
    with pytest.raises(CheckpointError, match="malformed"):
        MLP.from_safetensors(_header_file(tmp_path, altered, data[8 + length:]), device="cpu")
    shape = {**header, "W1": {**header["W1"], "shape": [3, 4]}}
    with pytest.raises(CheckpointError, match="tensor W1 is not F32 of shape"):
        MLP.from_safetensors(_header_file(tmp_path, shape, data[8 + length:]), device="cpu")
    extra = {**header, "W9": header["W1"]}
    with pytest.raises(CheckpointError, match="do not match"):
        MLP.from_safetensors(_header_file(tmp_path, extra, data[8 + length:]), device="cpu")


def test_non_finite_weights_are_refused(tmp_path):
    model = MLP([4, 3], backend="cpu", seed=0)
    state = model.state_dict()
    state["W1"][0, 0] = np.nan
    model.load_state_dict(state)
    path = model.to_safetensors(tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        MLP.from_safetensors(path, device="cpu")


def test_without_the_package_it_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(InputError, match=r"pip install 'xpmlp\[safetensors\]'"):
        MLP([4, 3], backend="cpu").to_safetensors(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def torch_sequential(model):
    """The docs' recipe: an nn.Sequential with the file's weights (W transposed into Linear.weight)."""
    import torch
    from torch import nn

    modules = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "swish": nn.SiLU, "silu": nn.SiLU,
               "selu": nn.SELU, "elu": nn.ELU, "gelu": lambda: nn.GELU(approximate="tanh")}
    tensors = st.load_file(str(model))
    from safetensors import safe_open

    with safe_open(str(model), "np") as f:
        config = json.loads(f.metadata()["config"])
    acts = config["activation"] if isinstance(config["activation"], list) else \
        [config["activation"]] * (len(config["sizes"]) - 2)
    layers = []
    for k in range(1, len(config["sizes"])):
        linear = nn.Linear(*tensors[f"W{k}"].shape, dtype=getattr(torch, config["dtype"]))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(tensors[f"W{k}"].T.copy()))
            linear.bias.copy_(torch.from_numpy(tensors[f"b{k}"]))
        layers.append(linear)
        if k < len(config["sizes"]) - 1:
            name = acts[k - 1]
            slope = config["activation_kwargs"].get("slope", 0.01)
            layers.append(nn.LeakyReLU(slope) if name == "leaky_relu" else modules[name]())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", [*ACTIVATIONS, ["tanh", "relu"]], ids=str)
def test_pytorch_nn_sequential_gives_identical_logits(tmp_path, activation, dtype):
    torch = pytest.importorskip("torch")
    model = MLP([12, 9, 7, 4], activation=activation, backend="cpu", dtype=dtype, seed=4)
    path = model.to_safetensors(tmp_path / "m.safetensors")
    net = torch_sequential(path)
    X = np.random.default_rng(1).standard_normal((50, 12)).astype(dtype) * 2
    with torch.no_grad():
        got = net(torch.from_numpy(X)).numpy()
    want = model.backend.to_numpy(model.forward(X))
    bound = 1e-12 if dtype == "float64" else 1e-5 * max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= bound


def test_cli_export_safetensors_of_a_checkpoint(tmp_path, capsys):
    from xpmlp import checkpoint as ckpt

    model = MLP([6, 5, 3], activation="elu", backend="cpu", dtype="float64", seed=7)
    ckpt.save(tmp_path / "checkpoint.npz", {"model_config": model.config(), "model": model.state_dict()})
    assert main(["export", str(tmp_path / "checkpoint.npz"), "--format", "safetensors"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    back = MLP.from_safetensors(tmp_path / "model.safetensors", device="cpu")
    assert all(np.array_equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
