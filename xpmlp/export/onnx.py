"""ONNX export: the model's own forward code, run on ndonnx arrays, recorded as an ONNX graph.

There is no second description of the network here. The model is rebuilt on
:class:`~xpmlp.backend.tracing.NdonnxBackend` with its trained weights, its ``LayerStack`` runs in
evaluation mode on an ndonnx *argument* (input ``x``, batch × features, dynamic batch), and the
arrays that come out — the logits and their softmax (:func:`xpmlp.losses.softmax`) — become the
graph's outputs. Every layer type xpmlp has exports this way, with no per-layer converter.

The graph: input ``x`` (batch, features) of the model's dtype; outputs ``logits`` and
``probabilities`` (batch, classes), and ``label`` (batch,) when class labels are given (the
estimator's ``classes_``). An optional :class:`~xpmlp.data.Preprocessor` is traced in front, in
float32 exactly as xpmlp applies it on the host, so the file takes the raw features a checkpoint's
data set holds.
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
from ..losses import softmax

#: The ONNX operator-set version of the default domain the exported graphs use (ndonnx's).
OPSET = 21
INPUT = "x"
BATCH = "batch"


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


def trace_onnx(model: Any, *, preprocessor: Any = None, classes: Sequence[Any] | None = None,
               check: bool = True) -> Any:
    """The ONNX model of ``model``'s forward pass, traced through ndonnx.

    Parameters
    ----------
    model : MLP or Sequential
        A model on any backend (its config and host weights are what is traced).
    preprocessor : Preprocessor, optional
        Traced in front of the network, so that ``x`` is the raw features (e.g. 0-255 pixels).
    classes : sequence, optional
        Class labels by class index; adds the output ``label`` (batch,) = ``classes[argmax(logits)]``.
    check : bool, default True
        Run the ONNX checker (with shape inference) on the result.

    Returns
    -------
    onnx.ModelProto
        Input ``x`` (batch, features); outputs ``logits``, ``probabilities`` (batch, classes)
        and ``label`` if ``classes`` is given; opset :data:`OPSET`.

    Raises
    ------
    InputError
        If the onnx extra is not installed (the line says what to install), or ``classes`` does
        not give one label per class.
    """
    onnx = import_onnx()
    backend = NdonnxBackend(model.dtype)
    xp = backend.xp
    traced = model.from_config(model.config(), backend)  # an MLP, or a Sequential of its layers
    traced.load_state_dict(model.state_dict())
    x = xp.argument(shape=(BATCH, model.sizes[0]), dtype=getattr(xp, model.dtype))
    h = x if preprocessor is None else _traced_preprocessing(x, preprocessor, xp, model.dtype)
    logits = traced.net.forward(h, train=False)
    outputs = {"logits": logits, "probabilities": softmax(logits, xp)}
    if classes is not None:
        if len(classes) != model.num_classes:
            raise InputError(f"{len(classes)} class labels for a model of {model.num_classes} classes; "
                             "give one label per class, in class-index order")
        outputs["label"] = xp.take(_label_constant(classes, xp), xp.argmax(logits, axis=1))
    proto = xp.build({INPUT: x}, outputs)
    _describe(proto, model, preprocessor, classes is not None)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    return proto


def _describe(proto: Any, model: Any, preprocessor: Any, labelled: bool) -> None:
    """Name the producer, pin the outputs' shapes (batch, classes) and record the model's config."""
    proto.producer_name, proto.producer_version = "xpmlp", __version__
    proto.doc_string = (f"xpmlp {type(model).__name__} {' -> '.join(map(str, model.sizes))} "
                        f"({', '.join(model.hidden_activations) or 'no hidden layer'}; {model.dtype})")
    shapes = {"logits": (BATCH, model.num_classes), "probabilities": (BATCH, model.num_classes), "label": (BATCH,)}
    for value in proto.graph.output:
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in shapes[value.name]:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    meta = {"xpmlp_config": to_json(model.config(), indent=None),
            "xpmlp_input": "raw features (preprocessing in the graph: "
                           f"{preprocessor.method})" if preprocessor is not None else "preprocessed features",
            "xpmlp_outputs": "logits, probabilities" + (", label" if labelled else "")}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(model: Any, path: str | os.PathLike, *, preprocessor: Any = None,
                classes: Sequence[Any] | None = None) -> Path:
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

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        If the onnx extra is missing or the folder does not exist.
    """
    target = check_target(path, "model.onnx")
    proto = trace_onnx(model, preprocessor=preprocessor, classes=classes)
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
        What ``MLP.config()`` gave at export.

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
