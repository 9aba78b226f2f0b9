"""Finding a complete copy of a data set on disk, or downloading one.

``locate(name, ...)`` looks, in this order, in

1. an explicit ``root`` argument (``--data-dir``): when given, the only place. A root that does not
   hold the data is a DataError listing the files looked for there, never a fallback to the places
   below or a download,
2. ``$XPMLP_DATA``,
3. the user cache (``pooch.os_cache("xpmlp")/<name>``, or ``cache_dir/<name>``), whose files are
   checked against the registry's hashes,
4. the system dataset folders in :data:`SYSTEM_DATA_DIRS` (Debian's ``dataset-fashion-mnist``
   package puts the real files in ``/usr/share/datasets/fashion-mnist/``),
5. a download from :data:`~xpmlp.data.registry.BASE_URLS` into the cache, verified against
   :data:`~xpmlp.data.registry.REGISTRY` by pooch.

A folder counts if it holds the files themselves (``train-images-idx3-ubyte.gz`` ... or
``data_batch_1`` ...) or the dataset's usual folder (``fashion-mnist/``, ``mnist/``,
``cifar-10-batches-py/``) or, for CIFAR-10, the archive ``cifar-10-python.tar.gz``. When nothing
is found, the DataError lists every place searched and how to get the data. Folders are recorded as
absolute paths (:func:`resolve_root`); a folder that cannot be searched (no permission) is a DataError
naming it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from ..errors import DataError, InputError
from .download import fetch, progressbar_wanted, verify_files
from .messages import one_line
from .registry import BASE_URLS, CIFAR_ARCHIVE, CIFAR_TEST, CIFAR_TRAIN, FOLDERS, IDX_FILES, REGISTRY

logger = logging.getLogger(__name__)

# Parents of system-wide data set folders; a module-level tuple so tests can monkeypatch it (here, in
# xpmlp.data.locate, where it is read).
SYSTEM_DATA_DIRS: tuple[str, ...] = ("/usr/share/datasets", "/usr/local/share/datasets")


def default_cache_dir() -> Path:
    """The platform's user cache folder for xpmlp (e.g. ``~/.cache/xpmlp`` on Linux).

    Returns
    -------
    Path
        The folder (not created here).
    """
    return Path(pooch.os_cache("xpmlp"))


@dataclass(frozen=True)
class Found:
    """A complete copy on disk: the folder (or CIFAR archive) and, for IDX data, the files to read from it."""

    location: Path
    files: dict[str, Path] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        """The files of this copy: the IDX files, or the location itself."""
        return list(self.files.values()) or [self.location]


def resolve_root(root: str | os.PathLike[str] | None) -> str | None:
    """A data folder as an absolute path string: ``~`` expanded, ``.``/``..`` folded, symlinks kept; None stays None.

    Record this, not what was typed: a relative ``--data-dir`` means another folder once the working
    directory changes (a resumed run, a study's worker process).
    """
    if root is None:
        return None
    try:
        path = os.fspath(root)
    except TypeError:
        raise InputError(f"a data folder must be a path (str or os.PathLike), got {type(root).__name__}") from None
    return os.path.abspath(os.path.expanduser(os.fsdecode(path)))


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but a folder on the way that cannot be searched is a one-line DataError, not a traceback.

    (Python before 3.14 raises PermissionError from ``is_file`` when stat() fails with EACCES.)
    """
    try:
        return path.is_file()
    except OSError as exc:
        folder = path.parent
        raise DataError(f"{folder}: cannot look into this data folder ({one_line(exc.strerror or exc)}); "
                        f"give your user read and search permission on it and the folders above it "
                        f"(chmod u+rx '{folder}'), or use another folder") from None


def _idx_files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in folder (gzipped or raw, '-idx' or '.idx' spelling), and the missing ones."""
    found: dict[str, Path] = {}
    missing = []
    for base in IDX_FILES:
        for cand in (f"{base}.gz", base, f"{base.replace('-idx', '.idx')}.gz", base.replace("-idx", ".idx")):
            if _is_file(folder / cand):
                found[base] = folder / cand
                break
        else:
            missing.append(base)
    return found, missing


def find_in(name: str, place: Path) -> tuple[Found | None, str]:
    """Look for a complete copy of ``name`` at ``place`` or in its usual sub-folder; say what was seen."""
    if name == "cifar10":
        if _is_file(place):
            return Found(place), ""
        for folder in (place, *(place / f for f in FOLDERS[name])):
            if _is_file(folder / CIFAR_TRAIN[0]):
                return Found(folder), ""
            if _is_file(folder / CIFAR_ARCHIVE):
                return Found(folder / CIFAR_ARCHIVE), ""
        return None, "not there"
    partial = ""
    for folder in (place, *(place / f for f in FOLDERS[name])):
        found, missing = _idx_files_in(folder)
        if not missing:
            return Found(folder, found), ""
        if found and not partial:
            partial = f"incomplete at {folder}: missing {', '.join(missing)}"
    return None, partial or "not there"


def _looked_for(name: str) -> str:
    """The files a data folder must hold for ``name``, and the sub-folders also searched, for error messages."""
    if name == "cifar10":
        files = f"{', '.join(CIFAR_TRAIN)}, {CIFAR_TEST} or {CIFAR_ARCHIVE}"
    else:
        files = f"{', '.join(f'{b}.gz' for b in IDX_FILES)} (or without .gz)"
    return f"{files}, in the folder itself or in {', '.join(f + '/' for f in FOLDERS[name])}"


def _root_error(name: str, place: Path, why: str) -> DataError:
    """An explicit folder that does not hold the data: an error, never a reason to look elsewhere or download."""
    state = "does not exist" if not place.exists() else why
    return DataError(f"{name}: the data folder {place} (root / --data-dir) does not hold it ({state}); looked for "
                     f"{_looked_for(name)}; point it at the folder that holds these files, or leave it out to "
                     f"search $XPMLP_DATA, the cache and the system folders and download")


def _search_named_places(name: str, root: str | os.PathLike[str] | None,
                         searched: list[str]) -> tuple[Found, str] | None:
    """Places 1-2 of the search order (``root``, ``$XPMLP_DATA``): (copy, origin) or None; notes go in searched.

    An explicit ``root`` that does not hold the data is a DataError: the caller named the folder, so
    data found anywhere else (or downloaded) would be another data set than the one asked for.
    """
    if root is not None:
        place = Path(str(resolve_root(root)))
        found, why = find_in(name, place)
        if found:
            return found, "root"
        raise _root_error(name, place, why)
    searched.append("root (not given)")
    env = os.environ.get("XPMLP_DATA", "").strip()
    if env:
        place = Path(str(resolve_root(env)))
        found, why = find_in(name, place)
        if found:
            return found, "XPMLP_DATA"
        searched.append(f"$XPMLP_DATA={place} ({why})")
    else:
        searched.append("$XPMLP_DATA (not set)")
    return None


def _search_standard_places(name: str, cache: Path, registry: Mapping[str, str | None],
                            searched: list[str]) -> tuple[Found, str] | None:
    """Places 3-4 of the search order (the cache, verified; the system folders): (copy, origin) or None."""
    found, why = find_in(name, cache)
    if found:
        verify_files(found.paths(), registry)
        return found, "cache"
    searched.append(f"cache {cache} ({why})")
    system = [Path(d) for d in SYSTEM_DATA_DIRS]
    for place in system:
        found, _ = find_in(name, place)
        if found:
            return found, "system"
    searched.append(f"system folders {', '.join(str(p / FOLDERS[name][0]) for p in system) or '(none)'} (not there)")
    return None


def _download_and_find(name: str, url: str, cache: Path, registry: Mapping[str, str | None],
                       progressbar: bool | None, searched: list[str]) -> Found | None:
    """Place 5: download into the cache and look there; on failure say why in searched and return None."""
    logger.info("%s: not found locally; downloading from %s into %s", name, url, cache)
    try:
        fetch(cache, url, registry, progressbar_wanted() if progressbar is None else progressbar)
    except DataError:
        raise
    except Exception as exc:  # offline, DNS, HTTP errors, a dropped connection: report and list the places
        searched.append(f"download from {url} failed ({type(exc).__name__}: {one_line(exc)[:300]})")
        return None
    found, why = find_in(name, cache)
    if not found:
        searched.append(f"download from {url} gave an unusable copy in {cache} ({why})")
    return found


def _how_to_get(name: str, base_url: str, registry: Mapping[str, str | None], cache: Path, download: bool) -> str:
    """The hint at the end of the not-found message."""
    urls = ", ".join(base_url.rstrip("/") + "/" + f for f in registry)
    first = "check the network and run again" if download else "allow the download (download=True)"
    hint = (f"to get it, {first}, or fetch {urls} into {cache}, "
            f"or pass root=<folder> or set $XPMLP_DATA to a folder that holds it")
    if name == "fashion-mnist":
        hint += "; on Debian/Ubuntu: sudo apt install dataset-fashion-mnist"
    return hint


def locate(name: str, root: str | os.PathLike[str] | None, download: bool, cache_dir: str | os.PathLike[str] | None,
           base_url: str | None, registry: Mapping[str, str | None] | None,
           progressbar: bool | None) -> tuple[Found, str]:
    """Walk the search order (module docstring) for the canonical ``name`` and return (copy, origin).

    ``origin`` is ``root``, ``XPMLP_DATA``, ``cache``, ``system`` or ``download``. Raises a one-line
    DataError listing every place searched when there is no copy, or when a cached file fails its hash.
    """
    searched: list[str] = []
    hit = _search_named_places(name, root, searched)
    if hit:
        return hit
    registry = REGISTRY[name] if registry is None else registry
    cache = Path(str(resolve_root(cache_dir or default_cache_dir()))) / name
    hit = _search_standard_places(name, cache, registry, searched)
    if hit:
        return hit
    url = base_url or os.environ.get("XPMLP_DATA_URL", "").strip() or BASE_URLS[name]
    if download:
        found = _download_and_find(name, url, cache, registry, progressbar, searched)
        if found:
            return found, "download"
    else:
        searched.append("download (disabled)")
    hint = _how_to_get(name, url, registry, cache, download)
    raise DataError(f"{name} not found; searched: {'; '.join(searched)}; {hint}")
