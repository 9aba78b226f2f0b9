"""Who races: the contenders of a run, and the backends xpmlp runs on in it.

xpmlp runs on ``--device`` (its row keeps the key ``"xpmlp"`` and is the base of every ratio)
and on every other backend of ``--xpmlp-devices`` (keys ``"xpmlp:SPEC"``). By default that is
every usable one of :data:`FAST_BACKENDS` -- NumPy, PyTorch on the CPU, and on a GPU CuPy and
PyTorch CUDA. array-api-strict is left out: it checks correctness, it is not meant to be fast.
PyTorch ``nn`` and scikit-learn run on the hardware of ``--device``. GEMM-only runs once per
library among xpmlp's backends (key ``"gemm"`` for ``--device``'s, ``"gemm:SPEC"`` for another), and
each xpmlp row and PyTorch's row name the GEMM-only of their own library (``gemm_key``): the share
of its products' speed a trainer reaches, and for PyTorch the most xpmlp on torch (whose products
GEMM-only (torch) runs, in xpmlp's layout) can gain on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backend import Backend, available_specs, get_backend
from .config import CONTENDERS, BenchConfig, BenchData
from .contenders import Contender, SklearnContender, TorchContender, XpmlpContender
from .gemm import GemmContender, gemm_backend_for

FAST_BACKENDS = ("cpu", "torch", "cuda", "torch:cuda")


def default_contenders(backend: Backend) -> list[str]:
    """Every contender on the CPU; on a GPU, those that can run there (not scikit-learn)."""
    return ["xpmlp", "torch", "gemm"] if backend.on_gpu else list(CONTENDERS)


def default_xpmlp_devices() -> list[str]:
    """Every usable backend of :data:`FAST_BACKENDS` on this machine."""
    return [spec for spec in available_specs() if spec in FAST_BACKENDS]


def xpmlp_backends(primary: Backend, devices: Sequence[str] | None) -> list[Backend]:
    """``primary`` first, then the backends of ``devices`` (None: the defaults), each once.

    A device named explicitly that cannot be used here raises :class:`~xpmlp.errors.DeviceError`.
    """
    backends = [primary]
    for spec in default_xpmlp_devices() if devices is None else devices:
        backend = get_backend(spec, primary.dtype)
        if all(backend.spec != other.spec for other in backends):
            backends.append(backend)
    return backends


def xpmlp_key(backend: Backend, primary: bool) -> str:
    return "xpmlp" if primary else f"xpmlp:{backend.spec}"


def make_contender(name: str, cfg: BenchConfig, data: BenchData, backend: Backend, key: str | None = None) -> Contender:
    """The contender ``name`` on the hardware of ``backend`` (xpmlp: on ``backend`` itself; GEMM-only:
    on its library, see :func:`~xpmlp.bench.gemm.gemm_backend_for`)."""
    if name == "xpmlp":
        return XpmlpContender(cfg, data, backend, key)
    if name == "torch":
        return TorchContender(cfg, data, backend)
    if name == "sklearn":
        return SklearnContender(cfg, data)
    if name == "gemm":
        return GemmContender(cfg, data, gemm_backend_for(backend), key)
    raise ValueError(f"unknown contender {name!r}; choose from {','.join(CONTENDERS)}")


def gemm_backends(primary: Backend, xpmlp: Sequence[Backend]) -> dict[str, Backend]:
    """{key: backend} of the GEMM-only contenders: one per library of xpmlp's backends (``primary``'s
    alone when xpmlp does not race), ``primary``'s first under the key ``"gemm"``."""
    found: dict[str, Backend] = {}
    for backend in [primary, *xpmlp]:
        target = gemm_backend_for(backend)
        if all(target.spec != other.spec for other in found.values()):
            found["gemm" if not found else f"gemm:{target.spec}"] = target
    return found


def lineup(cfg: BenchConfig, data: BenchData, names: Sequence[str], primary: Backend,
           xpmlp: Sequence[Backend]) -> list[Contender]:
    """The contenders in race order: xpmlp on each of its backends where ``names`` has xpmlp, then the rest.

    Each xpmlp contender and PyTorch's get ``extra["gemm_key"]``: the key of the GEMM-only contender
    of their own library, when one races.
    """
    contenders: list[Contender] = []
    gemm = gemm_backends(primary, xpmlp) if "gemm" in names else {}
    gemm_key_of = {backend.spec: key for key, backend in gemm.items()}
    for name in names:
        if name == "xpmlp":
            for index, backend in enumerate(xpmlp):
                contender = make_contender(name, cfg, data, backend, xpmlp_key(backend, index == 0))
                _link(contender, gemm_key_of.get(gemm_backend_for(backend).spec))
                contenders.append(contender)
        elif name == "gemm":
            contenders += [GemmContender(cfg, data, backend, key) for key, backend in gemm.items()]
        else:
            contender = make_contender(name, cfg, data, primary)
            if isinstance(contender, TorchContender):
                _link(contender, gemm_key_of.get(contender.spec))
            contenders.append(contender)
    return contenders


def _link(contender: Contender, gemm_key: str | None) -> None:
    if gemm_key is not None:
        contender.extra["gemm_key"] = gemm_key
