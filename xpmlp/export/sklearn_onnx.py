"""skl2onnx support: a scikit-learn Pipeline holding ``xpmlp.MLPClassifier`` exports with ``skl2onnx.to_onnx``.

``register_skl2onnx()`` registers a converter for :class:`xpmlp.MLPClassifier` with skl2onnx,
with the options its classifiers take (``zipmap``, ``output_class_labels``). The converter
writes no description of the network of its own: it inlines the graph
:func:`xpmlp.export.onnx.trace_onnx` traces from the estimator's forward code, its names
prefixed so that they cannot clash with the pipeline's, between the pipeline's input to this
step and the step's two outputs (label, probabilities).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.tracing import import_onnx_extra
from ..errors import InputError
from .onnx import OPSET, import_onnx, trace_onnx

ALIAS = "XpmlpMLPClassifier"


def _shapes(operator: Any) -> None:
    """skl2onnx's shape calculator of classifiers, told that the labels are ``classes_``."""
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    calculate_linear_classifier_output_shapes(operator)


def _inline(graph: Any, container: Any, prefix: str) -> None:
    """Add every node of the traced ``graph`` (names already prefixed) to the skl2onnx container."""
    from onnx import helper

    for init in graph.initializer:
        container.initializers.append(init)
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(node.op_type, list(node.input), list(node.output), op_domain=node.domain,
                           op_version=OPSET, name=node.name or container.get_unique_operator_name(prefix),
                           **attrs)


def _convert(scope: Any, operator: Any, container: Any) -> None:
    """The converter: cast the step's input to the network's dtype, the traced graph, the step's outputs."""
    from onnx import TensorProto, compose

    estimator = operator.raw_operator
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind not in "iuUO":
        raise InputError(f"skl2onnx labels must be integers or strings; classes_ has dtype {classes.dtype}: "
                         "encode the targets (e.g. LabelEncoder) before fitting")
    model = estimator._softmax_model()
    prefix = scope.get_unique_variable_name("xpmlp_")
    traced = trace_onnx(model, classes=classes.tolist(), check=False)
    traced_graph = compose.add_prefix_graph(traced.graph, prefix)
    onnx_dtype = TensorProto.DOUBLE if model.dtype == "float64" else TensorProto.FLOAT
    container.add_node("Cast", [operator.inputs[0].full_name], [prefix + "x"], to=onnx_dtype,
                       name=scope.get_unique_operator_name("XpmlpCastIn"))
    _inline(traced_graph, container, prefix)
    label, probabilities = operator.outputs[0], operator.outputs[1]
    container.add_node("Identity", [prefix + "label"], [label.full_name],
                       name=scope.get_unique_operator_name("XpmlpLabel"))
    proba_type = TensorProto.DOUBLE if type(probabilities.type).__name__ == "DoubleTensorType" else TensorProto.FLOAT
    container.add_node("Cast", [prefix + "probabilities"], [probabilities.full_name], to=proba_type,
                       name=scope.get_unique_operator_name("XpmlpCastOut"))


def register_skl2onnx() -> None:
    """Register xpmlp's converter with skl2onnx (idempotent): ``skl2onnx.to_onnx`` then exports
    ``xpmlp.MLPClassifier`` alone or inside a Pipeline.

    The converted step has skl2onnx's classifier outputs: ``label`` (``predict``) and
    ``probabilities`` (``predict_proba``, a ZipMap of them unless ``options={id(clf): {"zipmap": False}}``).

    Raises
    ------
    InputError
        If skl2onnx (or onnx, ndonnx) is not installed; the line says what to install.
    """
    skl2onnx = import_onnx_extra("skl2onnx")
    import_onnx()
    from ..estimator import MLPClassifier

    skl2onnx.update_registered_converter(MLPClassifier, ALIAS, _shapes, _convert,
                                         options={"zipmap": [True, False, "columns"],
                                                  "output_class_labels": [False, True], "nocl": [True, False]})
