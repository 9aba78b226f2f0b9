"""MNIST, Fashion-MNIST and CIFAR-10: find, download, verify, parse, split and preprocess.

Everything here works on host NumPy arrays; the Backend moves the result to a device later.

- :mod:`~xpmlp.data.registry`: the data sets, their download URLs, files and SHA-256, classes, shapes.
- :mod:`~xpmlp.data.locate`: the search order (root, ``$XPMLP_DATA``, user cache, system folders,
  download); :mod:`~xpmlp.data.download` fetches and verifies through pooch.
- :mod:`~xpmlp.data.idx`, :mod:`~xpmlp.data.cifar`: the two file formats.
- :mod:`~xpmlp.data.load`: ``load_dataset(name)`` -> :class:`Dataset`.
- :mod:`~xpmlp.data.split`, :mod:`~xpmlp.data.preprocess`, :mod:`~xpmlp.data.pipeline`: validation
  split and subsets, :class:`Preprocessor`, and ``prepare(name)`` -> :class:`Prepared`.
- :mod:`~xpmlp.data.fingerprint`: ``Prepared.fingerprint``, the SHA-256 of the training and validation
  split, to store with a checkpoint and compare on resume (``check_fingerprint``).

An explicit ``root`` (``--data-dir``) is the only place looked in: when it does not hold the data that is a
DataError, never a fallback or a download. ``resolve_root`` gives the absolute path to record.

Where the data was found is logged on the ``xpmlp.data`` loggers and kept in
``Dataset.source``/``Dataset.origin``.

Layout of what comes back: images are ``uint8`` arrays of shape ``(N, H, W, C)`` for every dataset
(``C == 1`` for the grey-scale ones), labels are ``int64`` of shape ``(N,)``.

Every problem with a data file is a one-line :class:`~xpmlp.errors.DataError` naming the file and
the fix; bad arguments are :class:`~xpmlp.errors.InputError`.

Tests that replace :data:`SYSTEM_DATA_DIRS` or :func:`default_cache_dir` patch them in
``xpmlp.data.locate``, where they are read; the names here are re-exports.
"""

from __future__ import annotations

from .fingerprint import check_fingerprint, data_fingerprint
from .idx import read_idx
from .load import Dataset, load_dataset
from .locate import SYSTEM_DATA_DIRS, default_cache_dir, resolve_root
from .pipeline import Prepared, prepare
from .preprocess import PREPROCESS_METHODS, Preprocessor
from .registry import BASE_URLS, CLASS_NAMES, DEFAULT_VAL_SIZE, KNOWN_DATASETS, REGISTRY
from .split import stratified_subset, train_val_split

__all__ = [
    "KNOWN_DATASETS", "BASE_URLS", "REGISTRY", "SYSTEM_DATA_DIRS", "DEFAULT_VAL_SIZE", "CLASS_NAMES",
    "PREPROCESS_METHODS", "Dataset", "Prepared", "Preprocessor",
    "load_dataset", "prepare", "read_idx", "train_val_split", "stratified_subset", "default_cache_dir",
    "resolve_root", "data_fingerprint", "check_fingerprint",
]
