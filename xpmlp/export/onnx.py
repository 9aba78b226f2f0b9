"""ONNX export: the model's own forward code, run on ndonnx arrays, recorded as an ONNX graph.

There is no second description of the network here. The model is rebuilt on
:class:`~xpmlp.backend.tracing.NdonnxBackend` with its trained weights, its ``LayerStack`` runs in
evaluation mode on an ndonnx *argument* (input ``x``, batch × features, dynamic batch), and the
arrays that come out — the logits and their output activation, the *head* — become the graph's
outputs. Every layer type xpmlp has exports this way, with no per-layer converter.

The graph: input ``x`` (batch, features) of the model's dtype; its outputs depend on the head:

=========== ============================================ ==========================================
head        outputs (batch, K)                           ``label`` when class labels are given
=========== ============================================ ==========================================
softmax     ``logits``, ``probabilities`` (softmax)      (batch,) ``classes[argmax(logits)]``
sigmoid     ``logits``, ``probabilities`` (σ per label)  (batch, K) int64 indicator ``logits > 0``
identity    ``predictions`` = the logits                 —
exp         ``predictions`` = e^logits                   —
=========== ============================================ ==========================================

The activations are xpmlp's own (:func:`xpmlp.losses.softmax`, :func:`xpmlp.layers.sigmoid`), the
ones ``predict_proba`` and ``predict`` use. An optional :class:`~xpmlp.data.Preprocessor` is traced
in front, in float32 exactly as xpmlp applies it on the host, so the file takes the raw features a
checkpoint's data set holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..backend.tracing import NdonnxBackend, import_onnx_extra
from ..errors import InputError
from ..io import atomic_write_bytes, check_target, to_json
from ..layers import sigmoid
from ..losses import softmax
from ..network import LayerStack, check_stack, layer_from_config

#: The ONNX operator-set version of the default domain the exported graphs use (ndonnx's).
OPSET = 21
INPUT = "x"
BATCH = "batch"
#: The output kinds :func:`trace_onnx` traces: the classifiers' and the regressors' output activations.
HEADS = ("softmax", "sigmoid", "identity", "exp")


def import_onnx() -> Any:
    """The ``onnx`` package, or one line saying what to install."""
    return import_onnx_extra("onnx")


def _traced_preprocessing(x: Any, preprocessor: Any, xp: Any, dtype: str) -> Any:
    """``Preprocessor.transform`` on a graph value: float32 arithmetic, then the model's dtype."""
    method = preprocessor.method
    h = xp.astype(x, xp.float32)
    if method == "scale":
        h = h * xp.asarray(np.float32(1.0 / 255.0))
    else:
        if preprocessor.mean is None:
            raise InputError(f"Preprocessor({method!r}) is not fitted; fit it on the training images before export")
        h = h - xp.asarray(np.asarray(preprocessor.mean, dtype=np.float32))
        if method == "standardize":
            h = h / xp.asarray(np.asarray(preprocessor.std, dtype=np.float32))
    return xp.astype(h, getattr(xp, dtype))


def _label_constant(classes: Sequence[Any], xp: Any) -> Any:
    labels = np.asarray(classes)
    if labels.dtype.kind in "iub":
        return xp.asarray(labels.astype(np.int64))
    if labels.dtype.kind == "f":
        return xp.asarray(labels.astype(np.float64))
    if labels.dtype.kind in "UO" and all(isinstance(c, str) for c in labels.tolist()):
        return xp.asarray(labels.astype(str))
    raise InputError(f"class labels of dtype {labels.dtype} cannot go into an ONNX graph; "
                     "use integer, floating or string labels")


def _traced_network(model: Any, backend: NdonnxBackend) -> LayerStack:
    """``model``'s layers, each rebuilt from its own ``config()``, on the tracing backend with its weights.

    Rebuilt layer by layer rather than from the model's ``config()``, so that what is traced is the
    network that runs: an estimator's network has one output unit where it regresses or has one
    logistic unit, and no activation layer where its hidden activation is 'identity'.
    """
    layers = [layer_from_config(layer.config()) for layer in model.layers]
    check_stack(layers, allow_stacked_activations=True, min_outputs=1)
    rng, random = backend.rng(0), backend.device_random(0)  # the initial draws are overwritten below
    for layer in layers:
        layer.place(backend, rng=rng, random=random)
    net = LayerStack(layers)
    for name, value in model.state_dict().items():
        net.set_param(name, backend.asarray(value))
    return net


def _head_outputs(logits: Any, head: str, classes: Sequence[Any] | None, num_classes: int,
                  xp: Any) -> dict[str, Any]:
    """The graph's outputs of ``head`` on the traced ``logits``."""
    if head == "identity":
        return {"predictions": logits}
    if head == "exp":
        return {"predictions": xp.exp(logits)}
    probabilities = softmax(logits, xp) if head == "softmax" else sigmoid(xp, logits)
    outputs = {"logits": logits, "probabilities": probabilities}
    if classes is not None:
        if len(classes) != num_classes:
            raise InputError(f"{len(classes)} class labels for a model of {num_classes} classes; "
                             "give one label per class, in class-index order")
        if head == "softmax":
            outputs["label"] = xp.take(_label_constant(classes, xp), xp.argmax(logits, axis=1))
        else:  # independent labels: the decision is the logit's sign, as the estimator's predict
            outputs["label"] = xp.astype(logits > 0, xp.int64)
    return outputs


def trace_onnx(model: Any, *, preprocessor: Any = None, classes: Sequence[Any] | None = None,
               head: str = "softmax", check: bool = True) -> Any:
    """The ONNX model of ``model``'s forward pass, traced through ndonnx.

    Parameters
    ----------
    model : MLP or Sequential
        A model on any backend (its config and host weights are what is traced).
    preprocessor : Preprocessor, optional
        Traced in front of the network, so that ``x`` is the raw features (e.g. 0-255 pixels).
    classes : sequence, optional
        Class labels by class index (heads 'softmax' and 'sigmoid'); adds the output ``label``:
        (batch,) ``classes[argmax(logits)]`` for 'softmax', the (batch, K) int64 indicator matrix
        ``logits > 0`` for 'sigmoid' (one column per label, in ``classes`` order).
    head : {"softmax", "sigmoid", "identity", "exp"}, default "softmax"
        The output activation: 'softmax' (one class per sample), 'sigmoid' (independent labels),
        'identity' or 'exp' (regression: the output ``predictions``).
    check : bool, default True
        Run the ONNX checker (with shape inference) on the result.

    Returns
    -------
    onnx.ModelProto
        Input ``x`` (batch, features); outputs ``logits`` and ``probabilities`` (batch, K), and
        ``label`` if ``classes`` is given, for the classifier heads; ``predictions`` (batch, K)
        for the regression heads; opset :data:`OPSET`.

    Raises
    ------
    InputError
        If the onnx extra is not installed (the line says what to install), ``head`` is unknown,
        ``classes`` is given to a regression head or does not give one label per class.
    """
    if head not in HEADS:
        raise InputError(f"unknown ONNX head {head!r}; use one of: {', '.join(HEADS)}")
    if classes is not None and head not in ("softmax", "sigmoid"):
        raise InputError(f"head {head!r} is a regression output and has no class labels; pass classes=None")
    onnx = import_onnx()
    backend = NdonnxBackend(model.dtype)
    xp = backend.xp
    x = xp.argument(shape=(BATCH, model.sizes[0]), dtype=getattr(xp, model.dtype))
    h = x if preprocessor is None else _traced_preprocessing(x, preprocessor, xp, model.dtype)
    logits = _traced_network(model, backend).forward(h, train=False)
    outputs = _head_outputs(logits, head, classes, model.num_classes, xp)
    proto = xp.build({INPUT: x}, outputs)
    _describe(proto, model, preprocessor, head)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    return proto


def _describe(proto: Any, model: Any, preprocessor: Any, head: str) -> None:
    """Name the producer, pin the outputs' shapes (batch, K) and record the model's config and head."""
    proto.producer_name, proto.producer_version = "xpmlp", __version__
    proto.doc_string = (f"xpmlp {type(model).__name__} {' -> '.join(map(str, model.sizes))} "
                        f"({', '.join(model.hidden_activations) or 'no hidden layer'}; {head} head; {model.dtype})")
    wide = (BATCH, model.num_classes)
    shapes = {"logits": wide, "probabilities": wide, "predictions": wide,
              "label": wide if head == "sigmoid" else (BATCH,)}
    for value in proto.graph.output:
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in shapes[value.name]:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    # the layer list too: it is what was traced (an estimator's identity hidden layers are absent
    # from the model's own activation setting)
    config = {**model.config(), "layers": [layer.config() for layer in model.net.layers]}
    meta = {"xpmlp_config": to_json(config, indent=None),
            "xpmlp_input": "raw features (preprocessing in the graph: "
                           f"{preprocessor.method})" if preprocessor is not None else "preprocessed features",
            "xpmlp_head": head,
            "xpmlp_outputs": ", ".join(value.name for value in proto.graph.output)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(model: Any, path: str | os.PathLike, *, preprocessor: Any = None,
                classes: Sequence[Any] | None = None, head: str = "softmax") -> Path:
    """Write ``model`` as an ONNX file (atomically: a failed export leaves no partial file).

    Parameters
    ----------
    model : MLP or Sequential
        The model to export.
    path : str or Path
        Where to write (``model.onnx``); the folder must exist.
    preprocessor : Preprocessor, optional
        Traced in front of the network (see :func:`trace_onnx`).
    classes : sequence, optional
        Class labels by index (adds the ``label`` output).
    head : {"softmax", "sigmoid", "identity", "exp"}, default "softmax"
        The output activation (see :func:`trace_onnx`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        If the onnx extra is missing, the folder does not exist, or the head or labels are wrong
        (see :func:`trace_onnx`).
    """
    target = check_target(path, "model.onnx")
    proto = trace_onnx(model, preprocessor=preprocessor, classes=classes, head=head)
    return atomic_write_bytes(target, proto.SerializeToString())


def _nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.g is not None and attribute.g.node:
                yield from _nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _nodes(sub)


def onnx_ops(model: Any) -> list[str]:
    """The operator types an ONNX model uses, its subgraphs (``If`` branches) included, sorted.

    Parameters
    ----------
    model : onnx.ModelProto or str or Path
        A model, or the path of an ONNX file.

    Returns
    -------
    list of str
        The distinct ``op_type`` names.
    """
    if isinstance(model, (str, os.PathLike)):
        model = import_onnx().load(os.fspath(model))
    return sorted({node.op_type for node in _nodes(model.graph)})


def onnx_config(model: Any) -> dict[str, Any]:
    """The xpmlp model config an exported file records in its metadata.

    Parameters
    ----------
    model : onnx.ModelProto or str or Path
        A model written by :func:`export_onnx`, or its path.

    Returns
    -------
    dict
        What ``MLP.config()`` gave at export, plus ``layers`` (each traced layer's ``config()``), so
        ``MLP.from_config`` rebuilds the network the graph holds.

    Raises
    ------
    InputError
        If the model holds no xpmlp config (it was not exported by xpmlp).
    """
    if isinstance(model, (str, os.PathLike)):
        model = import_onnx().load(os.fspath(model))
    for entry in model.metadata_props:
        if entry.key == "xpmlp_config":
            return json.loads(entry.value)
    raise InputError("this ONNX model holds no xpmlp config; it was not exported by xpmlp")
