"""Networks with one activation per hidden layer, and networks built from layer objects (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from xpmlp.backend import get_backend
from xpmlp.errors import InputError
from xpmlp.gradcheck import check_model, run_all
from xpmlp.layers import ELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from xpmlp.model import MLP, Sequential
from xpmlp.network import activation_label, hidden_activations, layer_from_config
from xpmlp.train import TrainConfig, Trainer, evaluate

MIXED = ["tanh", "relu", "sigmoid"]


def homework_layers() -> list:
    """The homework's Tanh->ReLU network, layer by layer."""
    return [Linear(784, 500), Tanh(), Linear(500, 500), ReLU(), Linear(500, 10)]


def blobs(n=120, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (c, d))
    y = rng.integers(0, c, n)
    return centres[y] + rng.normal(0, 1, (n, d)), y


# -- per-layer activations ----------------------------------------------------------------------------

def test_one_name_per_hidden_layer_builds_those_layers():
    model = MLP([6, 8, 7, 5, 3], activation=MIXED, backend="cpu")
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [Linear, Tanh, Linear, ReLU, Linear, Sigmoid, Linear]
    assert model.hidden_activations == MIXED and model.activation == MIXED
    assert model.config()["activation"] == MIXED


def test_one_name_is_still_used_for_every_hidden_layer():
    model = MLP([6, 8, 7, 3], activation="tanh", backend="cpu")
    assert model.activation == "tanh" and model.hidden_activations == ["tanh", "tanh"]
    assert MLP([6, 8, 7, 3], activation=["tanh"], backend="cpu").activation == "tanh"  # a one-name list


@pytest.mark.parametrize("names", [["tanh"] * 3, ["tanh", "relu", "relu", "relu"]])
def test_a_list_of_the_wrong_length_says_how_many_hidden_layers(names):
    with pytest.raises(InputError) as info:
        MLP([6, 8, 7, 3], activation=names, backend="cpu")
    msg = str(info.value)
    assert "\n" not in msg and f"{len(names)} names" in msg and "2 hidden layers" in msg


def test_an_unknown_name_in_the_list_is_refused():
    with pytest.raises(InputError, match="unknown activation 'tanhh'"):
        MLP([6, 8, 7, 3], activation=["relu", "tanhh"], backend="cpu")


def test_leaky_relu_slope_per_layer():
    model = MLP([4, 5, 5, 2], activation=["leaky_relu:0.2", "relu"], backend="cpu")
    assert isinstance(model.layers[1], LeakyReLU) and model.layers[1].slope == 0.2
    assert model.hidden_activations == ["leaky_relu:0.2", "relu"]


def test_activation_label():
    assert activation_label(["tanh", "relu"]) == "tanh+relu"
    assert activation_label(["relu"]) == "relu" and activation_label("selu") == "selu"


# -- networks from layer objects ----------------------------------------------------------------------

def test_layers_made_without_a_backend_wait_to_be_placed():
    layer, act, drop = Linear(784, 514), ReLU(), Dropout(0.2)
    assert layer.backend is None and layer.params == {} and act.backend is None and drop.p == 0.2


def test_sequential_equals_the_mlp_of_the_same_widths_and_activations(backend):
    net = Sequential(homework_layers(), backend=backend, seed=3)
    mlp = MLP([784, 500, 500, 10], activation=["tanh", "relu"], backend=backend, dtype="float32", seed=3)
    assert net.sizes == [784, 500, 500, 10] and net.activation == ["tanh", "relu"]
    assert net.backend.name == backend.name and net.dtype == "float32"
    for name, value in mlp.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[name], value, err_msg=name)
    X = np.random.default_rng(0).random((5, 784))
    np.testing.assert_array_equal(backend.to_numpy(net.predict_proba(X)), backend.to_numpy(mlp.predict_proba(X)))


def test_from_layers_builds_a_sequential():
    net = MLP.from_layers([Linear(6, 4), Sigmoid(), Linear(4, 3)], backend="strict", dtype="float64", seed=1)
    assert isinstance(net, Sequential) and net.backend.name == "strict" and net.dtype == "float64"
    assert net.activation == "sigmoid"


def test_layers_made_with_a_backend_keep_working():
    backend = get_backend("cpu", "float64")
    rng = backend.rng(0)
    layers = [Linear(3, 4, backend, rng=rng), Tanh(backend), Linear(4, 2, backend, rng=rng)]
    w1 = layers[0].params["W"].copy()
    net = Sequential(layers)
    assert net.backend is backend and net.dtype == "float64"
    np.testing.assert_array_equal(net.params["W1"], w1)  # placed once: not drawn again


def test_a_layer_on_another_backend_is_refused():
    layer = Linear(3, 2, get_backend("cpu"))
    with pytest.raises(InputError, match="already lives on cpu"):
        Sequential([layer], backend="strict")


def _refusal(layers, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        Sequential(layers, backend="cpu", **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_widths_that_do_not_chain_are_refused_naming_the_layer():
    msg = _refusal([Linear(784, 500), ReLU(), Linear(400, 10)])
    assert "layer 3" in msg and "Linear(400, 10" in msg and "Linear(500, 10)" in msg


def test_two_activations_in_a_row_are_refused_unless_meant():
    msg = _refusal([Linear(6, 4), ReLU(), Tanh(), Linear(4, 3)])
    assert "layers 2 and 3" in msg and "allow_stacked_activations=True" in msg
    net = Sequential([Linear(6, 4), ReLU(), Tanh(), Linear(4, 3)], backend="cpu", allow_stacked_activations=True)
    assert net.hidden_activations == ["relu>tanh"]
    # a Dropout between them does not hide it
    assert "two activations" in _refusal([Linear(6, 4), ReLU(), Dropout(0.1), Tanh(), Linear(4, 3)])


def test_a_network_without_a_final_linear_is_refused():
    assert "last layer is ReLU()" in _refusal([Linear(6, 4), ReLU()])


def test_fewer_than_two_classes_is_refused():
    assert "at least 2" in _refusal([Linear(6, 4), ReLU(), Linear(4, 1)])


def test_other_ill_formed_stacks_are_refused():
    assert "no layers" in _refusal([])
    assert "not a layer object" in _refusal([Linear(6, 4), "relu", Linear(4, 3)])
    shared = ReLU()
    assert "same object as layer 2" in _refusal([Linear(6, 4), shared, Linear(4, 4), shared, Linear(4, 3)])


def test_layer_configs_round_trip_and_bad_ones_are_refused():
    for layer in (Linear(5, 3, init="xavier"), LeakyReLU(slope=0.3), ELU(alpha=0.5), Dropout(0.25), Tanh()):
        again = layer_from_config(layer.config())
        assert type(again) is type(layer) and again.config() == layer.config()
    for bad in ({"type": "os.system"}, {"type": "Linear", "in_features": 3}, "Linear", {"type": "Linear",
                                                                                       "in_features": -1,
                                                                                       "out_features": 2}):
        with pytest.raises(InputError):
            layer_from_config(bad)


def test_summary_has_a_row_per_layer_the_totals_activations_dtype_and_device():
    net = Sequential([Linear(784, 514), ReLU(), Dropout(0.2), Linear(514, 10)], backend="cpu", dtype="float64")
    lines = net.summary().splitlines()
    rows = {line.split()[1]: line for line in lines if line[:1].isdigit()}
    assert len(rows) == 4
    assert rows["Linear(784,"].split()[-1] == "403,490" and "(batch, 514)" in rows["Linear(784,"]
    assert rows["ReLU()"].split()[-1] == "0" and rows["Dropout(p=0.2)"].split()[-1] == "0"
    assert rows["Linear(514,"].split()[-1] == f"{514 * 10 + 10:,}" and "(batch, 10)" in rows["Linear(514,"]
    text = "\n".join(lines)
    assert f"total params: {784 * 514 + 514 + 5150:,}" in text
    assert "hidden activations: relu" in text and "float64" in text and "cpu" in text


# -- a network of layers is a model like any other ------------------------------------------------------

def test_trainer_fits_a_sequential_with_dropout_on_every_cpu_backend(backend):
    X, y = blobs()
    net = Sequential([Linear(6, 16), Tanh(), Dropout(0.1), Linear(16, 8), ReLU(), Linear(8, 3)], backend=backend,
                     dtype="float64", seed=0)
    config = TrainConfig(epochs=30, batch_size=20, lr=0.1, optimizer="sgd", train_eval_size=0)
    Trainer(net, config, log=None, progress="none").fit(X, y)
    _, acc = evaluate(net, net.check_x(X), net.check_y(y, len(y)))
    assert acc > 0.9
    assert backend.to_numpy(net.predict(X)).shape == (len(y),)


def test_the_fused_step_equals_the_unfused_one_on_a_mixed_network(backend):
    X, y = blobs(160, 12, 4, seed=2)

    def train(fused: bool):
        model = MLP([12, 16, 16, 8, 4], MIXED, backend=backend, dtype="float64", seed=1)
        config = TrainConfig(iterations=60, log_every=60, batch_size=32, lr=0.1, optimizer="momentum", reg=1e-3,
                             train_eval_size=0, fused=fused)
        trainer = Trainer(model, config, log=None, progress="none")
        trainer.fit(X, y)
        return model.state_dict(), trainer

    fused, trainer = train(True)
    plain, _ = train(False)
    assert trainer.optimizer.can_fuse
    for name, value in plain.items():
        np.testing.assert_allclose(fused[name], value, rtol=0, atol=1e-12, err_msg=name)
    assert not np.array_equal(fused["W1"], MLP([12, 16, 16, 8, 4], MIXED, backend="cpu", seed=1,
                                               dtype="float64").state_dict()["W1"])


def test_gradcheck_passes_on_a_mixed_network(backend):
    model = MLP([6, 8, 7, 5, 4], activation=MIXED, backend=backend, dtype="float64", seed=2)
    X = np.random.default_rng(5).uniform(0.2, 1.0, (5, 6))  # away from ReLU's kink
    errors = check_model(model, X, np.array([0, 3, 1, 2, 3]), reg=1e-2)
    assert max(errors.values()) < 1e-6
    assert any(row["check"].startswith("MLP[6, 8, 7, 5, 4] tanh+relu+sigmoid") for row in run_all(backend))


@pytest.mark.needs_backend("torch")
def test_gradients_of_a_mixed_network_match_torch_autograd():
    import torch

    model = MLP([6, 8, 7, 5, 4], activation=MIXED, backend="cpu", dtype="float64", seed=4)
    X, y = np.random.default_rng(1).standard_normal((9, 6)), np.random.default_rng(2).integers(0, 4, 9)
    reg = 1e-2
    loss, grads = model.loss(X, y, reg=reg)
    state = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()}
    h = torch.tensor(X)
    for i, act in enumerate((torch.tanh, torch.relu, torch.sigmoid, None), start=1):
        h = h @ state[f"W{i}"] + state[f"b{i}"]
        h = act(h) if act else h
    ref = torch.nn.functional.cross_entropy(h, torch.tensor(y)) + 0.5 * reg * sum(
        (state[f"W{i}"] ** 2).sum() for i in range(1, 5))
    ref.backward()
    assert abs(float(loss) - ref.item()) < 1e-12
    for name, value in state.items():
        np.testing.assert_allclose(grads[name], value.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


def test_hidden_activations_reads_a_stack():
    layers = [Linear(4, 3), Tanh(), Dropout(0.1), Linear(3, 3), Linear(3, 2)]
    assert hidden_activations(layers) == ["tanh", "identity"]


# -- the estimator, parity and bench take a list ------------------------------------------------------

def test_estimator_takes_one_activation_per_hidden_layer_and_clones():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    from xpmlp import MLPClassifier

    X, y = blobs(200, 6, 3)
    est = MLPClassifier(hidden_layer_sizes=(12, 8), activation=["tanh", "relu"], max_iter=60, random_state=0,
                        learning_rate_init=0.01)
    est.fit(X, y)
    assert est._model.hidden_activations == ["tanh", "relu"] and est.score(X, y) > 0.9
    twin = clone(est)
    assert twin.get_params()["activation"] == ["tanh", "relu"]
    twin.set_params(activation=["identity", "logistic"]).fit(X, y)
    assert twin._model.hidden_activations == ["identity", "sigmoid"]
    with pytest.raises(InputError, match="3 names but hidden_layer_sizes has 2 layers"):
        MLPClassifier(hidden_layer_sizes=(12, 8), activation=["tanh", "relu", "relu"]).fit(X, y)


def test_parity_trains_a_mixed_network():
    from xpmlp.parity import format_table, run_parity

    result = run_parity(["strict"], ["float64"], 20, sizes=[16, 8, 8, 3], activation=["tanh", "relu"])
    assert result["ok"] and result["settings"]["activation"] == ["tanh", "relu"]
    assert "16-8-8-3 tanh+relu" in format_table(result).splitlines()[0]
    with pytest.raises(InputError, match="2 hidden layers"):
        run_parity(["strict"], ["float64"], 5, sizes=[16, 8, 8, 3], activation=["tanh", "relu", "relu"])


def test_bench_takes_an_activation_per_layer_for_xpmlp_and_torch_only():
    from xpmlp.bench.config import BenchConfig

    cfg = BenchConfig(hidden=[50, 40], activation=["tanh", "relu"], quick=True).resolve()
    assert cfg.activations == ["tanh", "relu"]
    with pytest.raises(InputError, match="relu, tanh, sigmoid only"):
        BenchConfig(hidden=[50], activation="swish").resolve()
    with pytest.raises(InputError, match="2 hidden layers"):
        BenchConfig(hidden=[50, 40], activation=["tanh", "relu", "relu"]).resolve()


def test_activation_options_go_to_the_layers_that_take_them():
    model = MLP([4, 8, 8, 3], activation=["selu", "leaky_relu"], slope=0.1)
    leaky = [layer for layer in model.layers if isinstance(layer, LeakyReLU)]
    assert len(leaky) == 1 and leaky[0].slope == 0.1
    with pytest.raises(InputError, match="slope is an option of none of this network's activations"):
        MLP([4, 8, 3], activation="tanh", slope=0.1)
