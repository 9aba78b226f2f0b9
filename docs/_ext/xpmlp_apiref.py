"""Generate the API reference: one page per public module, one entry per public name.

*Public* is defined here, once, and the docstring test reads the same definition: the names of
:data:`API` — for a module given with ``None``, its ``__all__``; for a module given with a
tuple, exactly those names. Every public class and function gets an autodoc entry (and so must
carry a numpydoc docstring); public constants are listed with their values.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

#: module -> its public names (None: the module's ``__all__``), in the order of the reference.
API: dict[str, tuple[str, ...] | None] = {
    "xpmlp.model": ("MLP", "Sequential"),
    "xpmlp.layers": ("Layer", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Swish", "ELU", "SELU", "GELU",
                     "Dropout", "get_activation", "init_std"),
    "xpmlp.network": ("LayerStack", "check_stack", "hidden_activations", "activation_list", "activation_options",
                      "normalize_activation",
                      "activation_label", "layer_from_config", "activation_name", "LAYER_TYPES"),
    "xpmlp.losses": None,
    "xpmlp.train": ("TrainConfig", "Trainer", "History", "train", "evaluate", "per_class_accuracy"),
    "xpmlp.optim": None,
    "xpmlp.sparse": ("is_sparse", "to_backend_sparse", "take_rows", "sparse_is_finite"),
    "xpmlp.lbfgs": ("minimize_lbfgs", "LbfgsResult", "strong_wolfe_line_search", "zoom", "LineSearch",
                    "two_loop_direction", "cubic_minimizer", "quadratic_minimizer", "MESSAGES"),
    "xpmlp.argchecks": ("check_number", "check_lr"),
    "xpmlp.schedules": None,
    "xpmlp.callbacks": ("Callback", "EarlyStopping", "ProgressBar", "CheckpointCallback", "extra_callbacks"),
    "xpmlp.backend": ("get_backend", "Backend", "NumpyBackend", "StrictBackend", "TorchBackend", "CupyBackend",
                      "to_numpy", "is_device_array", "host_rng", "check_dtype", "describe_devices",
                      "available_specs", "FLOAT_DTYPES"),
    "xpmlp.data": ("load_dataset", "prepare", "Dataset", "Prepared", "Preprocessor", "read_idx", "train_val_split",
                   "stratified_subset", "default_cache_dir", "KNOWN_DATASETS", "PREPROCESS_METHODS"),
    "xpmlp.estimator": ("MLPClassifier", "MLPRegressor"),
    "xpmlp.estimator.outputs": ("activate", "decisions", "accuracy", "r2", "LOSSES"),
    "xpmlp.estimator.lbfgs_fit": ("parameter_layout", "pack", "unpack"),
    "xpmlp.export.onnx": ("export_onnx", "trace_onnx", "onnx_ops", "onnx_config", "OPSET", "HEADS"),
    "xpmlp.export.sklearn_onnx": ("register_skl2onnx",),
    "xpmlp.export.safetensors": ("save_safetensors", "read_safetensors", "import_safetensors", "FORMAT"),
    "xpmlp.backend.tracing": ("NdonnxBackend", "import_ndonnx", "import_onnx_extra"),
    "xpmlp.plots": None,
    "xpmlp.studies": ("compare", "sweep", "load_spec", "check_spec", "expand_spec", "rank_by_validation",
                      "StudyInterrupted", "PRESETS"),
    "xpmlp.gradcheck": None,
    "xpmlp.parity": ("run_parity", "ParitySettings", "Trace", "train_trace", "tolerance", "format_table",
                     "TOLERANCES"),
    "xpmlp.checkpoint": ("save", "load"),
    "xpmlp.runs": ("train_run", "load_model", "make_config"),
    "xpmlp.errors": None,
}

TITLES = {
    "xpmlp.model": "Models", "xpmlp.layers": "Layers", "xpmlp.network": "Layer stacks",
    "xpmlp.runs": "Run folders", "xpmlp.losses": "Losses",
    "xpmlp.train": "Training", "xpmlp.optim": "Optimizers", "xpmlp.sparse": "Sparse input",
    "xpmlp.lbfgs": "Full-batch L-BFGS",
    "xpmlp.argchecks": "Argument checks", "xpmlp.schedules": "Learning-rate schedules",
    "xpmlp.callbacks": "Callbacks", "xpmlp.backend": "Backends", "xpmlp.data": "Data sets",
    "xpmlp.estimator": "scikit-learn estimators",
    "xpmlp.estimator.outputs": "The estimators' output layers",
    "xpmlp.estimator.lbfgs_fit": "L-BFGS for the estimators", "xpmlp.export.onnx": "ONNX export",
    "xpmlp.export.sklearn_onnx": "ONNX export of scikit-learn pipelines",
    "xpmlp.export.safetensors": "safetensors weights",
    "xpmlp.backend.tracing": "The tracing backend (ndonnx)", "xpmlp.plots": "Plots", "xpmlp.studies": "Studies",
    "xpmlp.gradcheck": "Gradient checks", "xpmlp.parity": "Cross-backend parity",
    "xpmlp.checkpoint": "Checkpoints", "xpmlp.errors": "Errors",
}


def module_names(module: str) -> list[str]:
    """The public names of ``module`` as :data:`API` defines them."""
    names = API[module]
    if names is not None:
        return list(names)
    mod = importlib.import_module(module)
    declared = getattr(mod, "__all__", None)
    if declared is not None:
        return list(declared)
    return [name for name, obj in vars(mod).items() if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == module]


def public_objects() -> list[tuple[str, str, Any]]:
    """Every public class and function: ``(module, name, object)``."""
    found = []
    for module in API:
        mod = importlib.import_module(module)
        for name in module_names(module):
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.append((module, name, obj))
    return found


def _entry(module: str, name: str, obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return f".. autoexception:: {module}.{name}\n"
        return f".. autoclass:: {module}.{name}\n   :members:\n"
    if inspect.isfunction(obj):
        return f".. autofunction:: {module}.{name}\n"
    return f".. autodata:: {module}.{name}\n   :annotation: = {obj!r}\n" if len(repr(obj)) < 60 \
        else f".. autodata:: {module}.{name}\n   :no-value:\n"


def page(module: str) -> str:
    """The reStructuredText of one module's API page."""
    mod = importlib.import_module(module)
    title = f"{TITLES[module]}: ``{module}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module}", ""]
    lines += [_entry(module, name, getattr(mod, name)) for name in module_names(module)]
    return "\n".join(lines) + "\n"


def write_pages(app: Any) -> None:
    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    wanted = {f"{module}.rst": page(module) for module in API}
    for name, text in wanted.items():
        path = out / name
        if not path.exists() or path.read_text() != text:  # unchanged pages keep their build cache
            path.write_text(text)
    for path in out.glob("*.rst"):
        if path.name not in wanted:
            path.unlink()


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", write_pages)
    return {"version": "1", "parallel_read_safe": True}
