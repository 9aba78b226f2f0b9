"""Every setting of a run in one place; the CLI flags, the defaults and the spec keys derive from it.

A run's settings are the fields of :class:`RunSettings` (data, model, device) and the fields of
:class:`xpmlp.train.TrainConfig` that carry ``cli`` metadata (training). ``DEFAULTS`` maps each
name to its default; ``add_setting_args`` gives ``xpmlp train`` (with the defaults) and
``compare``/``sweep`` (with None: "keep the preset's or the spec's value") the same flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .argtypes import number, positive_int
from .backend import FLOAT_DTYPES
from .data.preprocess import PREPROCESS_METHODS
from .train_config import TrainConfig, cli

#: argparse ``type=`` by the name the metadata gives (dataclass metadata stays plain data).
ARG_TYPES = {"positive_int": positive_int, "number": number, "int": int, "str": str, "activation": str}


@dataclass
class RunSettings:
    """The settings of a run that are not training hyper-parameters: data, model and device."""

    dataset: str = field(default="fashion-mnist", metadata=cli("fashion-mnist | mnist | cifar10"))
    data_dir: str | None = field(default=None, metadata=cli("folder holding the dataset files (else searched)"))
    download: bool = field(default=True, metadata=cli("never download; fail if the data is not found",
                                                      flag="--no-download", action="store_false"))
    hidden: list[int] = field(default_factory=lambda: [500, 500],
                              metadata=cli("hidden widths", type="positive_int", nargs="*"))
    activation: str | list[str] = field(default="relu", metadata=cli(
        "relu | leaky_relu[:SLOPE] | sigmoid | tanh | swish | selu | elu | gelu: one for every hidden layer, "
        "or one per hidden layer (--activation tanh relu)", nargs="+", type="activation"))
    init: str = field(default="he", metadata=cli("he | xavier | std:S"))
    dropout: float = field(default=0.0, metadata=cli("probability of dropping a hidden unit while training "
                                                     "(inverted dropout after each hidden activation)",
                                                     type="number", metavar="P"))
    val_size: int | None = field(default=None, metadata=cli("validation examples (default 5000; cifar10 1000)",
                                                            type="int"))
    subset: int | None = field(default=None, metadata=cli("keep N class-balanced training images (the "
                                                          "validation split is taken from them)",
                                                          type="positive_int"))
    preprocess: str = field(default="scale", metadata=cli(" | ".join(PREPROCESS_METHODS)))
    device: str = field(default="auto", metadata=cli("auto | cpu | cuda | cuda:N | torch | torch:cuda[:N] | "
                                                     "strict[:device1|:device2] (default auto; with --resume, "
                                                     "the checkpoint's device)"))
    dtype: str = field(default="float32", metadata=cli("floating dtype of the weights and the math",
                                                       choices=list(FLOAT_DTYPES)))


def setting_fields() -> list[dataclasses.Field]:
    """The fields of every run setting, in the order of ``--help``."""
    return list(dataclasses.fields(RunSettings)) + [f for f in dataclasses.fields(TrainConfig) if f.metadata]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


DEFAULTS: dict[str, Any] = {f.name: _default(f) for f in setting_fields()}
TRAIN_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata)


def add_setting_args(parser: argparse.ArgumentParser, with_defaults: bool = True) -> None:
    """One flag per run setting; ``with_defaults=False`` makes every default None (not given).

    ``--device`` defaults to None either way: a new run takes ``auto``, a resumed one its
    checkpoint's device.
    """
    for f in setting_fields():
        kwargs = dict(f.metadata)
        flag = kwargs.pop("flag", "--" + f.name.replace("_", "-"))
        if "type" in kwargs:
            kwargs["type"] = ARG_TYPES[kwargs["type"]]
        default = DEFAULTS[f.name] if with_defaults and f.name != "device" else None
        parser.add_argument(flag, dest=f.name, default=default, **kwargs)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line: every one not None."""
    return {name: getattr(args, name) for name in DEFAULTS if getattr(args, name, None) is not None}
