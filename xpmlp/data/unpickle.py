"""A restricted unpickler for CIFAR-10's python batches: it runs nothing and allocates no more than the file carries.

The official batches are protocol-2 pickles written by Python 2's cPickle: a dict of byte strings, lists
and one uint8 NumPy array. NumPy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` (an empty
array) followed by ``__setstate__((1, shape, dtype, is_fortran, raw_bytes))``; re-pickled under protocol 5
it is ``_frombuffer(bytearray, dtype, shape, order)``. The plain NumPy functions would allocate whatever
shape a crafted file declares (``_reconstruct(ndarray, (100000, 3072), ...)`` or ``ndarray((100000, 3072))``
is 300 MB from a 240-byte file), so :meth:`CifarUnpickler.find_class` hands out stand-ins instead:

- ``numpy.ndarray`` is a token that may only be passed to ``_reconstruct``; calling it is refused;
- ``_reconstruct`` accepts only the empty initial shape and returns a pending array whose
  ``__setstate__`` checks that ``shape x itemsize`` equals the bytes carried, then views those bytes;
- ``_frombuffer`` makes the same check before viewing the buffer;
- ``numpy.dtype`` builds only plain numeric dtypes (no objects, records, strings or sub-arrays);
- ``_codecs.encode`` does only latin-1 (how Python 3 writes bytes under protocol 2).

Nothing else is ever looked up, so nothing else can run. Each array is a view of bytes that the pickle
already held, so memory stays proportional to the file.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError
from .messages import CORRUPT, one_line

NOT_A_BATCH = "the file is not a CIFAR-10 batch — delete it and run again to fetch a fresh copy"

# Plain numeric dtypes, as NumPy spells them in a pickle (byte order comes later, from the dtype's state).
_DTYPES = frozenset(f"{kind}{size}" for kind, sizes in (("u", "1248"), ("i", "1248"), ("f", "248"), ("b", "1"))
                    for size in sizes)
_MAX_NDIM = 8


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only does what pickle protocol 2 uses it for.

    Python 3 writes ``bytes`` under protocol 2 as ``_codecs.encode(text, "latin1")``, so batches
    re-pickled by Python 3 need it; any other codec is refused rather than run.
    """
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


def _plain_dtype(dtype: Any, where: str) -> np.dtype:
    """``dtype`` if it is a plain numeric NumPy dtype (after the pickle set its state), else a DataError."""
    if (not isinstance(dtype, np.dtype) or dtype.names is not None or dtype.subdtype is not None
            or f"{dtype.kind}{dtype.itemsize}" not in _DTYPES):
        raise DataError(f"{where}: the pickle holds an array of dtype {dtype!r}, which a CIFAR-10 batch never "
                        f"does (only plain numbers); refusing it — {NOT_A_BATCH}")
    return dtype


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    """A shape tuple of non-negative Python ints, else a DataError."""
    if (not isinstance(shape, tuple) or len(shape) > _MAX_NDIM
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise DataError(f"{where}: the pickle declares an array of shape {shape!r}, which is not a shape; "
                        f"{NOT_A_BATCH}")
    return shape


def array_from_bytes(raw: Any, dtype: Any, shape: Any, order: str, where: str) -> np.ndarray:
    """A view of ``raw`` as an array of ``shape`` and ``dtype``, checked before anything is allocated.

    ``raw`` must be bytes or a bytearray of exactly ``prod(shape) * itemsize`` bytes.
    """
    dtype, shape = _plain_dtype(dtype, where), _shape(shape, where)
    if not isinstance(raw, (bytes, bytearray)):
        raise DataError(f"{where}: the pickle gives an array's data as {type(raw).__name__}, not bytes; "
                        f"{NOT_A_BATCH}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(raw):
        raise DataError(f"{where}: the pickle declares a {dtype} array of shape {shape} ({declared:,} bytes) but "
                        f"carries {len(raw):,} bytes of data; refusing to allocate it — the file is truncated or "
                        f"crafted; {NOT_A_BATCH}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if order == "F" else "C")


class _NdarrayToken:
    """What ``numpy.ndarray`` resolves to: fine as ``_reconstruct``'s first argument, refused when called."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        shape = args[0] if args else kwargs.get("shape")
        raise DataError(f"{self.where}: the pickle calls numpy.ndarray(shape={shape!r}) to allocate an array, which a "
                        f"CIFAR-10 batch never does; refusing it — {NOT_A_BATCH}")


class _PendingArray:
    """What ``_reconstruct`` returns: an array to be, made by ``__setstate__`` from the bytes the pickle carries."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # NumPy writes (1, shape, dtype, is_fortran, raw); very old pickles lack the version.
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise DataError(f"{self.where}: an array's state in the pickle is not (shape, dtype, order, data); "
                            f"{NOT_A_BATCH}")
        shape, dtype, fortran, raw = state
        self.array = array_from_bytes(raw, dtype, shape, "F" if fortran else "C", self.where)


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the stand-ins in the module docstring and refuses every other global."""

    def __init__(self, file: BinaryIO, where: str) -> None:
        # encoding="bytes": the real batches are Python 2 pickles whose str keys must stay bytes.
        super().__init__(file, encoding="bytes")
        self._where = where
        self._ndarray = _NdarrayToken(where)
        self._allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): self._ndarray,
                                                     ("numpy", "dtype"): self._dtype,
                                                     ("_codecs", "encode"): _latin1_encode}
        for core in ("numpy.core", "numpy._core"):  # NumPy 1 and NumPy 2 module names
            self._allowed[(f"{core}.multiarray", "_reconstruct")] = self._reconstruct
            self._allowed[(f"{core}.numeric", "_frombuffer")] = self._frombuffer

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed stand-in; anything else is a DataError (the file is not a plain batch)."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self._where}: refusing to unpickle {module}.{name}, which a CIFAR-10 batch never "
                            f"contains; the file is corrupt or not a CIFAR-10 batch — delete it and run again "
                            f"to fetch a fresh copy") from None

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
        """NumPy's ``_reconstruct(ndarray, (0,), b"b")``: only an empty plain ndarray; the data come by __setstate__."""
        if subtype is not self._ndarray or math.prod(_shape(shape, self._where)) != 0:
            raise DataError(f"{self._where}: the pickle asks NumPy for an array of shape {shape!r} without its data "
                            f"(_reconstruct), which a CIFAR-10 batch never does; refusing to allocate it — "
                            f"{NOT_A_BATCH}")
        return _PendingArray(self._where)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
        """NumPy's protocol-5 ``_frombuffer``: a view of the in-band buffer, its size checked first."""
        return array_from_bytes(buf, dtype, shape, order, self._where)

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        """``numpy.dtype(spec, align, copy)`` for plain numeric type codes only; always a fresh copy."""
        code = spec.decode("latin-1") if isinstance(spec, bytes) else spec
        if not isinstance(code, str) or code not in _DTYPES:
            raise DataError(f"{self._where}: the pickle asks for NumPy dtype {spec!r}, which a CIFAR-10 batch never "
                            f"uses; refusing it — {NOT_A_BATCH}")
        # A fresh copy: the pickle's BUILD then sets the byte order on it, never on NumPy's shared instance.
        return np.dtype(code, align=bool(align), copy=True)


def _settle(value: Any, where: str) -> Any:
    """A pending array becomes its ndarray (one that never got its data is refused); other values pass."""
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise DataError(f"{where}: the pickle holds an array without data; {NOT_A_BATCH}")
        return value.array
    return value


def unpickle_dict(blob: bytes, where: str) -> dict[str, Any]:
    """Load one pickled dict with CifarUnpickler, keys as str; every failure is a one-line DataError naming the file.

    Python 2 batches have bytes keys, batches re-pickled by Python 3 str keys.
    """
    try:
        obj = CifarUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except pickle.UnpicklingError as exc:
        if "out-of-band" in str(exc):
            raise DataError(f"{where}: the batch was pickled with protocol 5 out-of-band buffers (buffer_callback), "
                            "whose data are not in the file; re-pickle it without buffer_callback, or delete it "
                            "and run again to fetch a fresh copy") from None
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({one_line(exc)}); {CORRUPT}") from None
    except Exception as exc:  # a corrupt pickle can raise almost anything (EOFError, ValueError, KeyError...)
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {one_line(exc)}); "
                        f"{CORRUPT}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(obj).__name__}; {CORRUPT}")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): _settle(v, where) for k, v in obj.items()}
