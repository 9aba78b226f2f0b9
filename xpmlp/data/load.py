"""From a data set's name to its uint8 images and int64 labels on the host: locate, parse, cross-check."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .cifar import load_cifar
from .idx import load_idx_set
from .locate import locate
from .messages import CORRUPT
from .registry import CLASS_NAMES, canonical_name

logger = logging.getLogger(__name__)


@dataclass(repr=False)
class Dataset:
    """A data set as stored: uint8 images (N, H, W, C), int64 labels (N,), and where it came from.

    Attributes
    ----------
    name : str
        The canonical name.
    x_train, y_train : numpy.ndarray
        The training images and labels.
    x_test, y_test : numpy.ndarray
        The test images and labels.
    classes : list of str
        The class names, by label.
    image_shape : (int, int, int)
        (H, W, C) of one image.
    source : str
        The folder (or CIFAR-10 archive) read, as an absolute path.
    origin : str
        Which place in the search order supplied it: ``root``, ``XPMLP_DATA``, ``cache``,
        ``system`` or ``download``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    image_shape: tuple[int, int, int]
    source: str
    origin: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.classes)}, source={self.source!r}, origin={self.origin!r})")


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 cache_dir: str | os.PathLike[str] | None = None, base_url: str | None = None,
                 registry: Mapping[str, str | None] | None = None, progressbar: bool | None = None,
                 log: Callable[[str], object] | None = None) -> Dataset:
    """Find (or download), verify and parse a data set; the search order is in :mod:`xpmlp.data.locate`.

    Parameters
    ----------
    name : str
        One of ``KNOWN_DATASETS`` (``mnist``, ``fashion-mnist``, ``cifar10``; common spellings accepted).
    root : str or path, optional
        A folder holding the files, or a parent of the data set's usual folder. When given it is the
        only place looked in: a root without the data is a DataError, never a fallback or a download.
    download : bool, default True
        Fetch into the cache when no local copy exists.
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
    Dataset
        uint8 images (N, H, W, C) and int64 labels (N,), the class names and where they came from.

    Raises
    ------
    InputError
        Unknown data set name.
    DataError
        Not in ``root``, not found anywhere, a folder that cannot be searched, a failed checksum,
        or a corrupt, truncated or inconsistent file.
    """
    name = canonical_name(name)
    found, origin = locate(name, root, download, cache_dir, base_url, registry, progressbar)
    if name == "cifar10":
        x_train, y_train, x_test, y_test, classes = load_cifar(found.location)
    else:
        x_train, y_train, x_test, y_test = load_idx_set(name, found.files)
        classes = list(CLASS_NAMES[name])
    image_shape = (int(x_train.shape[1]), int(x_train.shape[2]), int(x_train.shape[3]))
    if tuple(x_test.shape[1:]) != image_shape:
        raise DataError(f"{found.location}: test images are {x_test.shape[1:]} but training images {image_shape}; "
                        f"{CORRUPT}")
    message = (f"{name}: loaded {x_train.shape[0]} training and {x_test.shape[0]} test images from "
               f"{found.location} ({origin})")
    logger.info(message)
    if log is not None:
        log(message)
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes,
                   image_shape=image_shape, source=str(found.location), origin=origin)
