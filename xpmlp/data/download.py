"""Downloads through pooch (temp file, hash check, then rename) and hash checks of files already cached."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pooch

from ..errors import DataError
from .messages import one_line, unreadable


def progressbar_wanted() -> bool:
    """A progress bar only when tqdm is installed and someone is watching stderr."""
    try:
        import tqdm  # noqa: F401  (optional dependency: imported here only to learn whether it is installed)
    except ImportError:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def fetch(target: Path, base_url: str, registry: Mapping[str, str | None], progressbar: bool) -> None:
    """Fetch every file of ``registry`` (file name -> "alg:hex" or None) from ``base_url`` into ``target``.

    A file that fails its hash check is not kept; that is a one-line DataError. Network errors pass through.
    """
    downloader = pooch.HTTPDownloader(progressbar=progressbar, chunk_size=1 << 16)
    for fname, known in registry.items():
        url = base_url.rstrip("/") + "/" + fname
        try:
            pooch.retrieve(url, known_hash=known, fname=fname, path=target, downloader=downloader,
                           progressbar=progressbar)
        except ValueError as exc:
            if "hash" in str(exc).lower():
                raise DataError(f"{url}: downloaded file failed its checksum check ({one_line(exc)}); nothing "
                                f"was saved in {target} — run again to retry, or check the download URL and "
                                "registry") from None
            raise


def verify_files(paths: Iterable[Path], registry: Mapping[str, str | None]) -> None:
    """Check files against the registry's hashes (by file name); names it does not list are skipped.

    Used on the cache: the cache holds our downloads, so a mismatch means corruption.
    """
    for path in paths:
        known = registry.get(path.name)
        if not known or not path.is_file():
            continue
        alg, _, expected = known.rpartition(":")
        alg = alg or "sha256"
        try:
            actual = pooch.file_hash(str(path), alg=alg)
        except OSError as exc:
            raise unreadable(path, exc) from None
        if actual.lower() != expected.lower():
            raise DataError(f"{path}: checksum mismatch ({alg} is {actual}, expected {expected}); the file is "
                            "corrupt or incomplete — delete it and run again to fetch a fresh copy")
