"""The exceptions xpmlp raises; each message names the problem and the fix."""

from __future__ import annotations


class XpmlpError(Exception):
    """Base class of every error xpmlp raises on purpose."""


class DeviceError(XpmlpError, RuntimeError):
    """A device spec that cannot be used here (missing package, no GPU, typo)."""


class InputError(XpmlpError, ValueError):
    """Arrays or arguments of the wrong shape, dtype, range or value."""


class ParameterError(InputError, TypeError):
    """An estimator's constructor parameter of the wrong type or range (a ValueError and a TypeError,
    as scikit-learn's own parameter errors are)."""


class DataError(XpmlpError, OSError):
    """A dataset file that is missing, corrupt or of the wrong format."""


class DivergenceError(XpmlpError, FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteWeightsError(DivergenceError, ValueError):
    """An estimator's fit ended with non-finite weights (a ValueError too, as scikit-learn raises)."""


class CheckpointError(XpmlpError, ValueError):
    """A checkpoint file that is truncated, foreign or incompatible."""
