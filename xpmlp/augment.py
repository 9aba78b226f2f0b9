"""Training-time data augmentation of flattened images: random horizontal flips and small shifts.

An MLP sees pixels, not shapes: a garment one pixel to the left is, to it, a new input. Showing it
each training image mirrored or moved by a few pixels (a new draw every step) teaches it what
convolutions get for free. The network stays a plain MLP; evaluation sees the images unchanged.

Rows are images flattened in (H, W, C) order, which is how every xpmlp loader stores them. Each
transform (flip or not, shift dy, dx) is an index map from output pixels to input pixels, with
out-of-image pixels pointing at an appended zero column (zero fill, i.e. the mean pixel after
``standardize`` or ``mean-image``). The maps are built once on the host; each step draws one
uniform number per image **on the device**, keyed by (seed, step), so a resumed run draws exactly
the same transforms, and the batch is gathered with ``take``: no host transfer per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend
from .data.registry import canonical_name
from .errors import InputError

Array = Any

#: Data sets whose classes survive a mirror image (a flipped digit is another glyph, or none).
MIRROR_SAFE = ("fashion-mnist", "cifar10")
#: Offset of augmentation keys, so their draws never meet dropout's (seed, draw) keys.
_STREAM = 1 << 48
_USAGE = "use none, flip, shift:N or flip,shift:N (e.g. --augment flip,shift:2)"


@dataclass(frozen=True)
class AugmentSpec:
    """What ``--augment`` asks for: horizontal flips (p = 1/2) and shifts of up to ``shift`` pixels."""

    flip: bool = False
    shift: int = 0

    @property
    def active(self) -> bool:
        return self.flip or self.shift > 0


def parse_augment(text: str) -> AugmentSpec:
    """``none`` | ``flip`` | ``shift:N`` | ``flip,shift:N`` (either order) → AugmentSpec; one-line InputError."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"augment {text!r} is not understood; {_USAGE}")
    flip, shift = False, 0
    parts = [p.strip() for p in text.lower().split(",")]
    if parts == ["none"]:
        return AugmentSpec()
    for part in parts:
        if part == "flip" and not flip:
            flip = True
        elif part.startswith("shift:") and not shift:
            value = part[len("shift:"):]
            if not value.isdigit() or not 1 <= int(value) <= 8:
                raise InputError(f"augment shift {value!r} must be a whole number of pixels from 1 to 8 (e.g. shift:2)")
            shift = int(value)
        else:
            raise InputError(f"augment {text!r} is not understood at {part!r}; {_USAGE}")
    return AugmentSpec(flip, shift)


def check_augment(text: str, dataset: str | None) -> AugmentSpec:
    """Parse ``text`` and refuse flips where a mirror image changes the class (MNIST).

    ``dataset`` as the user spelled it; a name xpmlp does not know (data passed in by a program)
    is the caller's to judge, and unknown names are reported by the data set's own check.
    """
    spec = parse_augment(text)
    if not spec.flip or dataset is None:
        return spec
    try:
        dataset = canonical_name(dataset)
    except InputError:
        return spec
    if dataset not in MIRROR_SAFE:
        raise InputError(f"augment flip mirrors the images, but a mirrored {dataset} image is not of its class; "
                         f"use shift:N alone (flips suit {', '.join(MIRROR_SAFE)})")
    return spec


def index_maps(image_shape: tuple[int, int, int], spec: AugmentSpec) -> np.ndarray:
    """(K, H·W·C) int64: for each transform, the input pixel of every output pixel (H·W·C: zero fill).

    The transforms are every (flip, dy, dx) with flip in {no, yes} (or just no) and dy, dx in
    [-shift, shift]; K = (2 if flip else 1) · (2·shift + 1)².
    """
    h, w, c = image_shape
    size = h * w * c
    rows, cols, chans = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    maps = []
    for mirrored in ((False, True) if spec.flip else (False,)):
        for dy in range(-spec.shift, spec.shift + 1):
            for dx in range(-spec.shift, spec.shift + 1):
                # mirror, then move: output pixel (i, j) shows pixel (i - dy, j - dx) of the (mirrored) image
                r, q = rows - dy, cols - dx
                inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
                q = (w - 1 - q) if mirrored else q
                maps.append(np.where(inside, (r * w + q) * c + chans, size).reshape(-1))
    return np.stack(maps).astype(np.int64)


class Augmenter:
    """Applies a random transform of ``spec`` to each row of a training batch, on the backend's device."""

    def __init__(self, spec: AugmentSpec, image_shape: tuple[int, int, int], backend: Backend, seed: int) -> None:
        self.spec, self.backend, self.seed = spec, backend, int(seed)
        self.image_shape = tuple(int(s) for s in image_shape)
        maps = index_maps(self.image_shape, spec)
        self.n_maps, self.size = maps.shape
        self.maps = backend.asarray(maps)  # once, on the device
        # the last map's number as a 0-d device array, made once: `minimum` against it keeps the choice
        # on the device (array-api-compat's `clip` assigns through boolean masks: host round trips on CuPy)
        self._last = backend.asarray(np.asarray(self.n_maps - 1.0))
        self._per_batch_size: dict[int, tuple[Array, Array]] = {}  # b -> (zero column, row offsets)

    def __call__(self, X: Array, step: int) -> Array:
        """X: (B, H·W·C) batch on the device → a new (B, H·W·C) array; draw keyed by (seed, step)."""
        xp, backend = self.backend.xp, self.backend
        b, d = X.shape
        if d != self.size:
            raise InputError(f"augmenting {self.image_shape} images needs {self.size} features per row, got {d}")
        u = backend.uniform((b,), (self.seed, _STREAM + int(step)))
        # u ≥ 0, so only the top needs a bound: float32 rounding can make u·K reach K itself
        choice = xp.astype(xp.minimum(xp.floor(u * self.n_maps), xp.astype(self._last, u.dtype)), xp.int64)
        index = xp.take(self.maps, choice, axis=0)  # (B, D): per row, its transform's map
        if b not in self._per_batch_size:  # every batch but an epoch's last has the same size: built once
            self._per_batch_size[b] = (xp.zeros((b, 1), dtype=X.dtype, device=X.device),
                                       xp.reshape(xp.arange(b, dtype=xp.int64, device=X.device) * (d + 1), (b, 1)))
        zeros, offsets = self._per_batch_size[b]
        padded = xp.concat([X, zeros], axis=1)  # the zero column out-of-image pixels point at
        flat = xp.take(xp.reshape(padded, (-1,)), xp.reshape(index + offsets, (-1,)))
        return xp.reshape(flat, (b, d))
