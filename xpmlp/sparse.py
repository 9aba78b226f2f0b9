"""Sparse input: SciPy CSR/CSC matrices on the NumPy backend, ``cupyx.scipy.sparse`` CSR on CuPy.

Only the first Linear layer ever sees X, and it needs two products of it: ``x @ W`` (sparse times
dense: a dense result) and ``xᵀ @ dout`` for its weight gradient (again a dense (in, out) result);
it needs no dL/dx. So a sparse X is never densified: everything after the first layer is dense.

SciPy is not a dependency of xpmlp: it is imported here only when a sparse matrix is given (which
means it is installed). PyTorch and array-api-strict have no sparse matrix these products take;
their backends refuse sparse input in one line.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from .backend import Backend, to_numpy

#: The modules whose classes are sparse matrices and arrays (``scipy.sparse._csr`` and friends).
_SPARSE_MODULES = ("scipy.sparse.", "cupyx.scipy.sparse.")
#: type -> whether it is a sparse matrix type, filled as types are met.
_IS_SPARSE: dict[type, bool] = {}
#: The formats the products and row gathers take as they are; any other is converted to CSR.
_KEPT_FORMATS = ("csr", "csc")


def is_sparse(a: Any) -> bool:
    """Whether ``a`` is a SciPy or CuPy (``cupyx.scipy.sparse``) sparse matrix or array.

    Read from the type's module, so neither SciPy nor CuPy is imported to answer it.

    Parameters
    ----------
    a : object
        Anything.

    Returns
    -------
    bool
        True for ``scipy.sparse.csr_matrix``, ``csr_array``, ``csc_matrix``, ... and their
        ``cupyx.scipy.sparse`` counterparts.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse
    >>> from xpmlp.sparse import is_sparse
    >>> is_sparse(scipy.sparse.eye(3, format="csr")), is_sparse(np.eye(3))
    (True, False)
    """
    kind = type(a)
    known = _IS_SPARSE.get(kind)
    if known is None:  # once per type: the dense hot path pays one dict lookup (~0.1 µs, not ~0.5)
        # nnz leaves out scipy.sparse.linalg's operators, which live there too
        known = _IS_SPARSE[kind] = kind.__module__.startswith(_SPARSE_MODULES) and hasattr(kind, "nnz")
    return known


def _is_cupyx(a: Any) -> bool:
    return type(a).__module__.startswith("cupyx.")


def to_backend_sparse(X: Any, backend: Backend) -> Any:
    """``X`` as a sparse matrix of ``backend``, in the backend's floating dtype.

    NumPy: a SciPy CSR or CSC matrix (or array) is kept as it is, with its indices, cast to the
    dtype only if it differs (no copy otherwise); other formats become CSR. CuPy: a
    ``cupyx.scipy.sparse.csr_matrix`` on the backend's device (one host-to-device copy).

    Parameters
    ----------
    X : scipy.sparse or cupyx.scipy.sparse matrix or array
        The samples, (n_samples, n_features).
    backend : Backend
        Where the model computes.

    Returns
    -------
    sparse matrix
        The matrix the first Linear layer multiplies.

    Raises
    ------
    InputError
        A backend without sparse support (PyTorch, array-api-strict).

    Examples
    --------
    >>> import scipy.sparse
    >>> from xpmlp.backend import get_backend
    >>> from xpmlp.sparse import to_backend_sparse
    >>> X = to_backend_sparse(scipy.sparse.random(4, 3, density=0.5, format="coo"), get_backend("cpu"))
    >>> X.format, str(X.dtype)
    ('csr', 'float32')
    """
    return backend.sparse_matrix(X)  # each backend knows its library's sparse matrices


def take_rows(X: Any, rows: Any) -> Any:
    """The rows ``X[rows]``, in the order given (repeats allowed), as a CSR matrix.

    Parameters
    ----------
    X : sparse matrix
        A SciPy or cupyx sparse matrix (CSR gathers fastest; a CSC one gathers, then converts
        only the rows taken).
    rows : array of int
        Row indices: a host NumPy array or a device array (moved to where X lives).

    Returns
    -------
    sparse matrix
        ``len(rows)`` rows of X, CSR, of X's library.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse
    >>> from xpmlp.sparse import take_rows
    >>> X = scipy.sparse.csr_matrix(np.arange(6.0).reshape(3, 2))
    >>> take_rows(X, np.array([2, 0])).toarray().tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    if _is_cupyx(X):
        # CuPy's namespace, found from X's own data: asarray moves host indices to the device, keeps device ones
        index = array_namespace(X.data).asarray(rows)
    else:
        index = to_numpy(rows)
    out = X[index]
    return out if out.format == "csr" else out.tocsr()


def sparse_is_finite(X: Any) -> bool:
    """Whether every stored value of ``X`` is finite (the implicit zeros are).

    One reduction over ``X.data``; only when its sum is not finite (a NaN or inf, or finite values
    that overflow the sum) the exact elementwise test runs.

    Parameters
    ----------
    X : sparse matrix
        A SciPy or cupyx sparse matrix.

    Returns
    -------
    bool
        False if a stored value is NaN or ±inf.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse
    >>> from xpmlp.sparse import sparse_is_finite
    >>> sparse_is_finite(scipy.sparse.csr_matrix(np.array([[0.0, np.nan]])))
    False
    """
    data = X.data
    if math.isfinite(float(data.sum())):
        return True
    xp = array_namespace(data)
    return bool(xp.all(xp.isfinite(data)))
