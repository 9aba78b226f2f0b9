"""skl2onnx support: a scikit-learn Pipeline holding xpmlp's estimators exports with ``skl2onnx.to_onnx``.

``register_skl2onnx()`` registers a converter for :class:`xpmlp.MLPClassifier`, with the options
its classifiers take (``zipmap``, ``output_class_labels``), and one for :class:`xpmlp.MLPRegressor`.
The converters write no description of the network of their own: each inlines the graph
:func:`xpmlp.export.onnx.trace_onnx` traces from the estimator's forward code, its names
prefixed so that they cannot clash with the pipeline's, between the pipeline's input to this
step and the step's outputs: label and probabilities for the classifier (a multilabel one's label
is its (N, K) int64 indicator matrix, as ``predict``), the predictions (N, ``n_outputs_``) for the
regressor, as skl2onnx's own regressors give them ((N, 1) for a 1-D target).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.tracing import import_onnx_extra
from ..errors import InputError
from .onnx import OPSET, import_onnx, trace_onnx

ALIAS = "XpmlpMLPClassifier"
REGRESSOR_ALIAS = "XpmlpMLPRegressor"


def _shapes(operator: Any) -> None:
    """skl2onnx's shape calculator of classifiers, told that the labels are ``classes_`` (one row of
    K 0/1 labels per sample for a multilabel classifier)."""
    from skl2onnx.common.data_types import Int64TensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    calculate_linear_classifier_output_shapes(operator)
    estimator = operator.raw_operator
    if getattr(estimator, "_multilabel", False):
        n = operator.inputs[0].get_first_dimension()
        operator.outputs[0].set_type(Int64TensorType(shape=[n, len(estimator.classes_)]))


def _regressor_shapes(operator: Any) -> None:
    """skl2onnx's shape calculator of regressors (the input's float type), (N, ``n_outputs_``) wide."""
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    calculate_linear_regressor_output_shapes(operator)
    predictions = operator.outputs[0]
    predictions.set_type(type(predictions.type)([operator.inputs[0].get_first_dimension(),
                                                 operator.raw_operator.n_outputs_]))


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


def _onnx_float(variable: Any) -> int:
    from onnx import TensorProto

    return TensorProto.DOUBLE if type(variable.type).__name__ == "DoubleTensorType" else TensorProto.FLOAT


def _traced_step(scope: Any, operator: Any, container: Any, classes: list[Any] | None) -> str:
    """Cast the step's input to the network's dtype, then the traced graph; the prefix of its names."""
    from onnx import TensorProto, compose

    model, head = operator.raw_operator._onnx_network()
    prefix = scope.get_unique_variable_name("xpmlp_")
    traced = trace_onnx(model, classes=classes, head=head, check=False)
    onnx_dtype = TensorProto.DOUBLE if model.dtype == "float64" else TensorProto.FLOAT
    container.add_node("Cast", [operator.inputs[0].full_name], [prefix + "x"], to=onnx_dtype,
                       name=scope.get_unique_operator_name("XpmlpCastIn"))
    _inline(compose.add_prefix_graph(traced.graph, prefix), container, prefix)
    return prefix


def _convert(scope: Any, operator: Any, container: Any) -> None:
    """The classifier's converter: the traced graph, then the step's outputs (label, probabilities)."""
    classes = np.asarray(operator.raw_operator.classes_)
    if classes.dtype.kind not in "iuUO":
        raise InputError(f"skl2onnx labels must be integers or strings; classes_ has dtype {classes.dtype}: "
                         "encode the targets (e.g. LabelEncoder) before fitting")
    prefix = _traced_step(scope, operator, container, classes.tolist())
    label, probabilities = operator.outputs[0], operator.outputs[1]
    container.add_node("Identity", [prefix + "label"], [label.full_name],
                       name=scope.get_unique_operator_name("XpmlpLabel"))
    container.add_node("Cast", [prefix + "probabilities"], [probabilities.full_name], to=_onnx_float(probabilities),
                       name=scope.get_unique_operator_name("XpmlpCastOut"))


def _convert_regressor(scope: Any, operator: Any, container: Any) -> None:
    """The regressor's converter: the traced graph, its predictions in the step's declared float type."""
    prefix = _traced_step(scope, operator, container, None)
    predictions = operator.outputs[0]
    container.add_node("Cast", [prefix + "predictions"], [predictions.full_name], to=_onnx_float(predictions),
                       name=scope.get_unique_operator_name("XpmlpCastOut"))


def register_skl2onnx() -> None:
    """Register xpmlp's converters with skl2onnx (idempotent): ``skl2onnx.to_onnx`` then exports
    ``xpmlp.MLPClassifier`` and ``xpmlp.MLPRegressor`` alone or inside a Pipeline.

    The converted classifier has skl2onnx's classifier outputs: ``label`` (``predict``: (N,), or the
    (N, K) int64 indicator matrix of a multilabel classifier) and ``probabilities``
    (``predict_proba``, a ZipMap of them unless ``options={id(clf): {"zipmap": False}}``). The
    converted regressor has skl2onnx's regressor output ``variable`` (``predict``), (N, ``n_outputs_``)
    in the pipeline's float type: (N, 1) where ``predict`` gives (N,).

    Raises
    ------
    InputError
        If skl2onnx (or onnx, ndonnx) is not installed; the line says what to install.
    """
    skl2onnx = import_onnx_extra("skl2onnx")
    import_onnx()
    from ..estimator import MLPClassifier, MLPRegressor

    skl2onnx.update_registered_converter(MLPClassifier, ALIAS, _shapes, _convert,
                                         options={"zipmap": [True, False, "columns"],
                                                  "output_class_labels": [False, True], "nocl": [True, False]})
    skl2onnx.update_registered_converter(MLPRegressor, REGRESSOR_ALIAS, _regressor_shapes, _convert_regressor)
