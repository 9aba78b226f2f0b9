"""prepare(name): one call from a data set's name to float32 train/val/test rows ready to train on."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fingerprint import data_fingerprint
from .load import load_dataset
from .locate import resolve_root
from .preprocess import Preprocessor
from .registry import DEFAULT_VAL_SIZE, canonical_name
from .split import check_count, stratified_subset, train_val_split

logger = logging.getLogger(__name__)


@dataclass(repr=False)
class Prepared:
    """Float32 (N, H*W*C) host arrays with int64 (N,) labels, the fitted Preprocessor and what to record.

    Attributes
    ----------
    x_train, y_train, x_val, y_val, x_test, y_test : numpy.ndarray
        The three splits.
    preprocessor : Preprocessor
        Fitted on the training split.
    name : str
        The data set.
    classes : list of str
        The class names, by label.
    image_shape : (int, int, int)
        (H, W, C) of one image.
    source : str
        The absolute folder (or CIFAR-10 archive) read.
    config : dict
        The source and fingerprint, plus ``root`` (the explicit data folder, absolute, or None) and
        the split settings.
    fingerprint : str
        :func:`~xpmlp.data.fingerprint.data_fingerprint` of the training and validation split: stored
        with a checkpoint and compared on resume.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessor: Preprocessor
    name: str
    classes: list[str]
    image_shape: tuple[int, int, int]
    source: str
    config: dict[str, Any]
    fingerprint: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def num_features(self) -> int:
        """Inputs per example (H*W*C)."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"Prepared(name={self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
                f"test={self.x_test.shape}, preprocess={self.preprocessor.method!r}, source={self.source!r})")


def _validation_size(name: str, val_size: int | None, subset: int | None) -> tuple[int, str | None]:
    """(val_size to use, a note when the default was shrunk to fit a small subset)."""
    if val_size is not None:
        return check_count(val_size, "val_size"), None
    default = DEFAULT_VAL_SIZE[name]
    if subset is not None and subset <= default:
        note = (f"subset {subset} is not larger than the default validation size {default}, "
                f"so val_size = subset // 10 = {subset // 10}")
        return subset // 10, note
    return default, None


def prepare(name: str, root: str | os.PathLike[str] | None = None, val_size: int | None = None,
            subset: int | None = None, preprocess: str = "scale", seed: int = 0, download: bool = True, *,
            test_subset: int | None = None, cache_dir: str | os.PathLike[str] | None = None,
            base_url: str | None = None, registry: Mapping[str, str | None] | None = None,
            progressbar: bool | None = None, log: Callable[[str], object] | None = None) -> Prepared:
    """Load a data set and return float32 train/val/test rows (N, H*W*C), preprocessed with training statistics.

    Steps: load (see :func:`load_dataset`) -> optional stratified ``subset`` of the training pool ->
    stratified validation split of ``val_size`` -> fit the Preprocessor on the training part only ->
    transform all three.

    Parameters
    ----------
    name : str
        The data set (see :func:`load_dataset`).
    root : str or path, optional
        The only place looked in when given; it is recorded absolute.
    val_size : int, optional
        Validation examples (default ``DEFAULT_VAL_SIZE[name]``; if ``subset`` is not larger than
        that, ``subset // 10``, and the config says so).
    subset : int, optional
        Keep this many class-balanced training images, from which the validation split is taken.
    preprocess : {"scale", "standardize", "mean-image"}, default "scale"
        The :class:`Preprocessor` method.
    seed : int, default 0
        Seed of the subset and the split.
    download : bool, default True
        Fetch the data when no local copy exists.
    test_subset : int, optional
        Keep only this many test images (the test set stays whole by default).
    cache_dir : str or path, optional
        The cache's parent folder (default ``pooch.os_cache("xpmlp")``); data goes in ``<cache_dir>/<name>``.
    base_url : str, optional
        Where to download from (default ``$XPMLP_DATA_URL`` or ``BASE_URLS[name]``).
    registry : mapping, optional
        File name -> ``"sha256:..."``/``"md5:..."`` to download and verify (default ``REGISTRY[name]``).
    progressbar : bool, optional
        Show a download progress bar (default: when tqdm is installed and stderr is a terminal).
    log : callable, optional
        Also receives the "found it here" message.

    Returns
    -------
    Prepared
        The three splits, the fitted preprocessor and what a checkpoint records.

    Raises
    ------
    InputError
        Unknown data set or method, or sizes that do not fit the data.
    DataError
        As :func:`load_dataset`.

    Examples
    --------
    >>> from xpmlp.data import prepare
    >>> data = prepare("fashion-mnist", subset=2000, val_size=200)  # doctest: +SKIP
    >>> data.x_train.shape, data.x_val.shape  # doctest: +SKIP
    ((1800, 784), (200, 784))
    """
    name = canonical_name(name)
    pre = Preprocessor(preprocess)  # fail on a bad method before any loading
    if subset is not None:
        subset = check_count(subset, "subset")
    if test_subset is not None:
        test_subset = check_count(test_subset, "test_subset")
    val_size, note = _validation_size(name, val_size, subset)

    ds = load_dataset(name, root, download, cache_dir=cache_dir, base_url=base_url, registry=registry,
                      progressbar=progressbar, log=log)
    x_pool, y_pool = ds.x_train, ds.y_train
    if subset is not None:
        x_pool, y_pool = stratified_subset(x_pool, y_pool, subset, seed)
    x_tr, y_tr, x_val, y_val = train_val_split(x_pool, y_pool, val_size, seed)
    x_te, y_te = ds.x_test, ds.y_test
    if test_subset is not None:
        x_te, y_te = stratified_subset(x_te, y_te, test_subset, seed)
    pre.fit(x_tr)
    fingerprint = data_fingerprint(name, preprocess, x_tr, y_tr, x_val, y_val)
    config: dict[str, Any] = {
        "name": name, "root": resolve_root(root), "source": ds.source, "origin": ds.origin,
        "fingerprint": fingerprint, "preprocess": preprocess,
        "val_size": val_size, "subset": subset, "test_subset": test_subset, "seed": seed,
        "n_train": int(y_tr.shape[0]), "n_val": int(y_val.shape[0]), "n_test": int(y_te.shape[0]),
        "image_shape": list(ds.image_shape),
    }
    if note:
        config["note"] = note
        logger.info("%s: %s", name, note)
    return Prepared(x_train=pre.transform(x_tr), y_train=y_tr, x_val=pre.transform(x_val), y_val=y_val,
                    x_test=pre.transform(x_te), y_test=y_te, preprocessor=pre, name=name, classes=list(ds.classes),
                    image_shape=ds.image_shape, source=ds.source, config=config, fingerprint=fingerprint)
